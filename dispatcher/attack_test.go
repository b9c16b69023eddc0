package dispatcher_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// The attacks of SECURITY.md's matrix, each run against a real broker by
// a connection that anyone could open: no credentials are needed on a
// broker without --auth. Each test says what held.

// jsonLog returns a logger writing JSON lines into buf, as the
// dispatcher's log file gets them.
func jsonLog(buf *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, nil))
}

// logLines returns the lines of buf whose msg is msg.
func logLines(t testing.TB, buf *testutil.SyncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func publishHB(t testing.TB, nc *nats.Conn, subject string, hb wire.Heartbeat) {
	t.Helper()
	b, _ := json.Marshal(hb)
	if err := nc.Publish(subject, b); err != nil {
		t.Fatal(err)
	}
}

// TestAttackForgedSubject: fake workers announce subjects of their own
// choosing, and ids that are not their subject's. No request reaches the
// sink or loops through calc.request, and the refusals are logged.
func TestAttackForgedSubject(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log) })
	startWorker(t, url, "w-real", nil)
	waitState(t, d, up("w-real"))

	evil := connect(t, url)
	var sunk, requests atomic.Int64
	for subj, n := range map[string]*atomic.Int64{"evil.sink": &sunk, "calc.request": &requests} {
		if _, err := evil.Subscribe(subj, func(*nats.Msg) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	s := wire.Subjects{}
	now := time.Now()
	publishHB(t, evil, s.Heartbeat("evil1"), wire.Heartbeat{ID: "evil1", Subject: "evil.sink", State: wire.StateUp, StartedAt: now})
	publishHB(t, evil, s.Heartbeat("evil2"), wire.Heartbeat{ID: "evil2", Subject: "calc.request", State: wire.StateUp, StartedAt: now})
	publishHB(t, evil, s.Heartbeat("evil3"), wire.Heartbeat{ID: "w-real", State: wire.StateDraining, Seq: 1 << 62, StartedAt: now})
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(logLines(t, &log, "bad heartbeat")); n == 0 {
			return fmt.Errorf("no bad heartbeat logged")
		}
		return nil
	})

	nc := connect(t, url)
	const n = 30
	for i := range n {
		r, err := nc.Request(s.Request(), []byte(fmt.Sprintf("add %d 1", i)), 5*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var rep wire.Reply
		if err := json.Unmarshal(r.Data, &rep); err != nil || rep.Worker != "w-real" || string(rep.Result) != fmt.Sprint(i+1) {
			t.Fatalf("request %d: reply %s; want %d from w-real", i, r.Data, i+1)
		}
	}
	// The evil subscriber's callbacks may trail the replies: wait for its
	// count of the requests, then check that nothing more came.
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := requests.Load(); got < n {
			return fmt.Errorf("calc.request carried %d messages; want %d", got, n)
		}
		return nil
	})
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := sunk.Load(); got != 0 {
		t.Fatalf("%d messages reached evil.sink; want 0", got)
	}
	if got := requests.Load(); got != n {
		t.Fatalf("calc.request carried %d messages for %d requests: forwards looped", got, n)
	}
	st := d.Status()
	if st.Total != 1 || st.Workers[0].ID != "w-real" || st.Workers[0].State != wire.StateUp {
		t.Fatalf("table = %+v; want only w-real, up", st.Workers)
	}
}

// TestAttackForgedDraining: forged draining heartbeats for every worker,
// with seq 2^64-1 and each worker's own started_at (public: it is in every
// heartbeat), take them out for at most about one heartbeat interval
// beyond the reorder window (dead-after / 3), not for a minute, and the
// contradiction is logged. A dead-after of 3 s (a window of 1 s) keeps a
// loaded machine's stalls from passing for the attack's effect.
func TestAttackForgedDraining(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log); c.DeadAfter = 3 * time.Second })
	ids := []string{"w-a", "w-b", "w-c"}
	for _, id := range ids {
		startWorker(t, url, id, nil)
	}
	waitState(t, d, up(ids...))

	evil := connect(t, url)
	beats := make(chan *nats.Msg, 64)
	if _, err := evil.ChanSubscribe("calc.heartbeat.*", beats); err != nil {
		t.Fatal(err)
	}
	forged := map[string]bool{}
	for len(forged) < len(ids) {
		hb, err := wire.DecodeHeartbeat((<-beats).Data)
		if err != nil || forged[hb.ID] {
			continue
		}
		hb.State, hb.Seq = wire.StateDraining, ^uint64(0)
		publishHB(t, evil, wire.Subjects{}.Heartbeat(hb.ID), hb)
		forged[hb.ID] = true
	}
	start := time.Now()
	waitState(t, d, map[string]string{"w-a": wire.StateDraining})
	// Back within the window (1 s) and a heartbeat (100 ms), with room
	// for a loaded machine; the old rule kept them out until forgotten.
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for _, w := range d.Status().Workers {
			if w.State != wire.StateUp {
				return fmt.Errorf("%s is %s", w.ID, w.State)
			}
		}
		return nil
	})
	t.Logf("all workers back up %v after the forged drainings", time.Since(start).Round(time.Millisecond))
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if len(logLines(t, &log, "worker heartbeats up after a draining heartbeat from the same process: one of them was not its own")) == 0 {
			return fmt.Errorf("contradiction not logged")
		}
		return nil
	})
}

// TestAttackDuplicateID: a second process heartbeating with a live
// worker's id is detected and logged; its draining does not take the
// worker out while the worker heartbeats up.
func TestAttackDuplicateID(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	// Heard within dead-after is what keeps the worker up: 10 s, so that a
	// loaded machine's stall of its heartbeats does not pass for the attack.
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log); c.DeadAfter = 10 * time.Second })
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	evil := connect(t, url)
	other := time.Now().Add(time.Hour)
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		publishHB(t, evil, "calc.heartbeat.w-a", wire.Heartbeat{ID: "w-a", State: wire.StateDraining, Seq: 1, StartedAt: other, Host: "evil"})
		if len(logLines(t, &log, "worker id claimed by two live processes")) == 0 {
			return fmt.Errorf("no conflict logged")
		}
		return nil
	})
	// The worker heartbeats every 100 ms: a check every 20 ms would see it
	// draining if the forger's heartbeats counted.
	for range 20 {
		publishHB(t, evil, "calc.heartbeat.w-a", wire.Heartbeat{ID: "w-a", State: wire.StateDraining, Seq: 1, StartedAt: other})
		if err := evil.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the attacker's pace, not synchronisation
		for _, w := range d.Status().Workers {
			if w.State != wire.StateUp {
				t.Fatalf("w-a is %s (%s) while its own heartbeats say up", w.State, w.Reason)
			}
		}
	}
}

// TestAttackTableFlood: heartbeats from 3,000 made-up ids fill the table
// to its cap and no further, say so in the log at most once a second, and
// the status reply stays under the broker's max payload with every count.
// When the flood stops, the made-up workers go down and a real one takes
// a place.
func TestAttackTableFlood(t *testing.T) {
	b := brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: -1, MaxPayload: 16 << 10})
	url := b.ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log); c.MaxWorkers = 500 })

	evil := connect(t, url)
	start := time.Now()
	for i := range 3000 {
		id := fmt.Sprintf("evil-%04d", i)
		publishHB(t, evil, "calc.heartbeat."+id, wire.Heartbeat{ID: id, State: wire.StateUp, Seq: 1, StartedAt: start})
	}
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	var full []map[string]any
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		full = logLines(t, &log, "worker table full: heartbeat from a new worker ignored")
		if st := d.Status(); st.Total != 500 || len(full) == 0 {
			return fmt.Errorf("table of %d, %d lines saying it is full", st.Total, len(full))
		}
		return nil
	})
	if limit := int(time.Since(start)/time.Second) + 2; len(full) > limit {
		t.Fatalf("%d table-full lines in %v; want at most one a second", len(full), time.Since(start))
	}

	// The status reply, as `bilancia status` and `health dispatcher` get it.
	nc := connect(t, url)
	r, err := nc.Request(wire.Subjects{}.Status(), nil, 5*time.Second)
	if err != nil {
		t.Fatalf("status request: %v", err)
	}
	st, err := wire.DecodeStatus(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, n := range st.Counts {
		counted += n
	}
	if len(r.Data) > 16<<10 || !st.Truncated || st.Total != 500 || counted != 500 || len(st.Workers) == 0 {
		t.Fatalf("status: %d bytes, truncated %v, total %d, counts %v, %d rows; want ≤ 16 KiB, truncated, 500 up",
			len(r.Data), st.Truncated, st.Total, st.Counts, len(st.Workers))
	}
	t.Logf("status under flood: %d bytes, %d of %d rows", len(r.Data), len(st.Workers), st.Total)
	// A request naming workers gets their rows, whatever the table's size.
	ask, _ := json.Marshal(wire.StatusRequest{Workers: []string{"evil-2999", "evil-0499", "nobody"}})
	if r, err = nc.Request(wire.Subjects{}.Status(), ask, 5*time.Second); err != nil {
		t.Fatalf("status request for two workers: %v", err)
	}
	if st, err = wire.DecodeStatus(r.Data); err != nil || st.Total != 500 || len(st.Workers) != 1 || st.Workers[0].ID != "evil-0499" {
		t.Fatalf("status for evil-2999 (refused), evil-0499 and nobody: %s; want evil-0499's row and total 500", r.Data)
	}

	// The flood stops: the made-up workers go down after dead-after, and a
	// real worker evicts one.
	startWorker(t, url, "w-real", nil)
	waitState(t, d, up("w-real"))
	if st := d.Status(); st.Total > 500 {
		t.Fatalf("table of %d; cap 500", st.Total)
	}
}

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
	url := brokertest.Run(t).ClientURL()
	var log, reqs testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.Logger = jsonLog(&log)
		c.LogRequests, c.RequestLog = true, &reqs
	})
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
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
	line := logLines(t, &log, "client connected")[0]
	if _, ok := line["claimed_host"]; !ok {
		t.Errorf("hello line %v: want its fields marked as claims", line)
	}
}

// TestAttackEscapeInjection: line breaks, terminal escapes and U+2028 in
// every field a client controls stay inside their JSON strings: one line
// per request, no raw control characters or separators.
func TestAttackEscapeInjection(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log, reqs testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.Logger = jsonLog(&log)
		c.LogRequests, c.RequestLog = true, &reqs
	})
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
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
	if got := len(logLines(t, &reqs, "request")); got != n {
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
