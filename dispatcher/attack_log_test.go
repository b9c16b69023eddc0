package dispatcher_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// The attacks on what a dispatcher logs, and what does not hold without
// credentials (SECURITY.md's matrix); the helpers are in attack_test.go.

// TestAttackBadHeartbeatFlood: 1,000 bad heartbeats cost the log a line
// a second, and the next line says how many were held back.
func TestAttackBadHeartbeatFlood(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log) })
	evil := connect(t, url)
	start := time.Now()
	for range 1000 {
		publishHB(t, evil, "calc.heartbeat.x", wire.Heartbeat{ID: "w-a", State: wire.StateUp})
	}
	heartbeat(t, evil, "w-ok", 1) // after the flood, on the same connection
	waitState(t, d, up("w-ok"))
	lines := logLines(t, &log, "bad heartbeat")
	if limit := int(time.Since(start)/time.Second) + 1; len(lines) == 0 || len(lines) > limit {
		t.Fatalf("%d bad heartbeat lines in %v; want 1 to %d", len(lines), time.Since(start), limit)
	}
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		publishHB(t, evil, "calc.heartbeat.x", wire.Heartbeat{ID: "w-a", State: wire.StateUp})
		for _, l := range logLines(t, &log, "bad heartbeat") {
			if held, _ := l["held_back"].(float64); held >= 900 {
				return nil
			}
		}
		return fmt.Errorf("no line says the flood was held back")
	})
}

// TestAttackOversizedFields: a 1 MB heartbeat, 100 KB header values and a
// 100 KB hello reach the log as bounded lines.
func TestAttackOversizedFields(t *testing.T) {
	url, log, reqs := loggedDispatcher(t)
	evil := connect(t, url)
	big := strings.Repeat("é", 50_000) // 100 KB, 2-byte runes: a cut must not split one

	if err := evil.Publish("calc.heartbeat.w-a", bytes.Repeat([]byte("x"), 1000_000)); err != nil {
		t.Fatal(err)
	}
	publishHB(t, evil, "calc.heartbeat.x", wire.Heartbeat{ID: big[:3000]})
	hello, _ := json.Marshal(wire.ClientHello{Name: big[:1000], Host: big[:1000], IP: big[:1000]})
	if err := evil.Publish(wire.Subjects{}.ClientConnect(), hello); err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(wire.Subjects{}.Request())
	m.Header.Set(wire.HdrClient, big)
	m.Header.Set(wire.HdrRequestID, big)
	m.Data = []byte("expr 1+" + strings.Repeat(" ", 10_000) + "1")
	if _, err := evil.RequestMsg(m, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(reqs.String(), `"msg":"request"`) || !strings.Contains(log.String(), "bad heartbeat") {
			return fmt.Errorf("request line or bad heartbeat not logged yet")
		}
		return nil
	})
	// The second bad heartbeat may be held back by the rate limit; the
	// hello is logged once the log says so.
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !strings.Contains(log.String(), "client connected") {
			return fmt.Errorf("hello not logged yet")
		}
		return nil
	})
	for name, out := range map[string]string{"event log": log.String(), "request log": reqs.String()} {
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if len(l) > 2048 {
				t.Errorf("%s: a line of %d bytes: %.200s…", name, len(l), l)
			}
			if !json.Valid([]byte(l)) {
				t.Errorf("%s: %.200s… is not JSON", name, l)
			}
		}
	}
	line := logLines(t, log, "client connected")[0]
	if _, ok := line["claimed_host"]; !ok {
		t.Errorf("hello line %v: want its fields marked as claims", line)
	}
}

// TestAttackEscapeInjection: line breaks, terminal escapes and U+2028 in
// every field a client controls stay inside their JSON strings: one line
// per request, no raw control characters or separators.
func TestAttackEscapeInjection(t *testing.T) {
	url, log, reqs := loggedDispatcher(t)
	nc := connect(t, url)
	inject := "x\n{\"msg\":\"request\",\"status\":200}\r\u2028\u2029\x1b[2J\x1b]0;pwned\x07\u202e"
	// Header values cannot hold control characters on the wire: NATS
	// headers are lines. The separators can.
	hdrInject := "x\u2028{\"msg\":\"request\",\"status\":200}\u2029\u202e"
	hello, _ := json.Marshal(wire.ClientHello{Name: inject, Host: inject, IP: inject})
	if err := nc.Publish(wire.Subjects{}.ClientConnect(), hello); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for i := range n {
		m := nats.NewMsg(wire.Subjects{}.Request())
		m.Header.Set(wire.HdrClient, hdrInject)
		m.Header.Set(wire.HdrRequestID, fmt.Sprintf("%d%s", i, hdrInject))
		m.Data = []byte("add 1 2 " + inject)
		if _, err := nc.RequestMsg(m, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := strings.Count(reqs.String(), "\n"); got != n {
			return fmt.Errorf("%d request lines; want %d", got, n)
		}
		if !strings.Contains(log.String(), "client connected") {
			return fmt.Errorf("hello not logged yet")
		}
		return nil
	})
	for name, out := range map[string]string{"event log": log.String(), "request log": reqs.String()} {
		for _, bad := range []string{"\r", "\u2028", "\u2029", "\x1b", "\x07"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s holds a raw %q", name, bad)
			}
		}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if !json.Valid([]byte(l)) {
				t.Errorf("%s: %q is not JSON", name, l)
			}
		}
	}
	if got := len(logLines(t, reqs, "request")); got != n {
		t.Fatalf("%d lines parse as requests; want %d", got, n)
	}
}

// TestAttackRogueWorker: what does not hold without credentials. Anyone
// can subscribe to a real worker's subject and answer first (the first
// reply wins), or heartbeat as a worker of its own and answer its subject:
// clients get its answers, labelled as it likes; anyone can read every
// reply on _INBOX.>. The dispatcher cannot tell; permissions on the broker
// can (docs/auth.md). This test pins down the behaviour SECURITY.md
// reports.
func TestAttackRogueWorker(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	// The real worker takes 500 ms per request, so that the rogue's
	// answer comes first.
	startWorker(t, url, "w-real", func(c *calcworker.Config) { c.Env.Delay = 500 * time.Millisecond })
	evil := connect(t, url)
	answer := func(m *nats.Msg) {
		out := nats.NewMsg(m.Reply)
		out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		out.Data = []byte(`{"op":"add","result":666,"worker":"w-real"}`)
		_ = m.RespondMsg(out)
	}
	for _, subj := range []string{"calc.worker.w-real", "calc.worker.w-rogue"} {
		if _, err := evil.Subscribe(subj, answer); err != nil {
			t.Fatal(err)
		}
	}
	sniffed := make(chan *nats.Msg, 16)
	if _, err := evil.ChanSubscribe("_INBOX.>", sniffed); err != nil {
		t.Fatal(err)
	}
	publishHB(t, evil, "calc.heartbeat.w-rogue", wire.Heartbeat{ID: "w-rogue", State: wire.StateUp, StartedAt: time.Now()})
	waitState(t, d, up("w-real", "w-rogue"))
	nc := connect(t, url)
	for i := range 2 { // round robin: one to each
		r, err := nc.Request(wire.Subjects{}.Request(), []byte("add 2 3"), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(r.Data), "666") {
			t.Fatalf("request %d: reply %s: the rogue's answer was expected to get through without auth", i, r.Data)
		}
	}
	select {
	case <-sniffed:
	case <-time.After(5 * time.Second):
		t.Fatal("no reply seen on _INBOX.>: expected without auth")
	}
}

// loggedDispatcher starts a broker, a dispatcher whose event and request
// lines go to the returned buffers, and one worker, w-a, in rotation.
func loggedDispatcher(t *testing.T) (url string, log, reqs *testutil.SyncBuffer) {
	t.Helper()
	url = brokertest.Run(t).ClientURL()
	log, reqs = new(testutil.SyncBuffer), new(testutil.SyncBuffer)
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.Logger = jsonLog(log)
		c.LogRequests, c.RequestLog = true, reqs
	})
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	return url, log, reqs
}
