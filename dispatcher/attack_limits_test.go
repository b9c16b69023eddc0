package dispatcher_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// request sends a raw request with headers hdr (name, value pairs) and
// returns the reply, its code (0 for a result) and its payload.
func request(t testing.TB, nc *nats.Conn, data string, timeout time.Duration, hdr ...string) (*nats.Msg, int) {
	t.Helper()
	m := nats.NewMsg(wire.Subjects{}.Request())
	for i := 0; i+1 < len(hdr); i += 2 {
		m.Header.Set(hdr[i], hdr[i+1])
	}
	m.Data = []byte(data)
	r, err := nc.RequestMsg(m, timeout)
	if err != nil {
		t.Fatalf("request %q: %v", data, err)
	}
	code := 0
	if e := wire.ErrorFromMsg(r); e != nil {
		code = e.Code
	}
	return r, code
}

// TestAttackHugeRequestID: requests whose Calc-Request-Id is 500 KB, to
// the dispatcher or straight to a worker, are answered 400 without the
// id, reach no worker's table of held requests, and silence no worker:
// another client's long jobs on the same worker run once each.
func TestAttackHugeRequestID(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	w := startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))

	victim := newClient(t, url, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := victim.Do(context.Background(), "sleep 600"); err != nil {
				errs <- fmt.Errorf("victim's job %d: %w", i, err)
			}
		}()
	}
	evil := connect(t, url)
	huge := strings.Repeat("i", 500<<10)
	for range 4 {
		r, code := request(t, evil, "sleep 600", 5*time.Second, wire.HdrRequestID, huge, wire.HdrProgress, "1")
		if code != wire.CodeBadRequest || len(r.Header.Get(wire.HdrRequestID)) > wire.MaxRequestIDLen {
			t.Fatalf("huge id to the dispatcher: code %d, id of %d bytes echoed; want 400, none", code, len(r.Header.Get(wire.HdrRequestID)))
		}
		m := nats.NewMsg(w.Subject())
		m.Header.Set(wire.HdrRequestID, huge)
		m.Header.Set(wire.HdrProgress, "1")
		m.Data = []byte("sleep 600")
		r, err := evil.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := wire.ErrorFromMsg(r); e == nil || e.Code != wire.CodeBadRequest {
			t.Fatalf("huge id to the worker: %v; want 400", e)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Served != 4 || st.PublishFailed != 0 {
		t.Fatalf("worker served %d, %d publishes failed; want the victim's 4 alone, none failed", st.Served, st.PublishFailed)
	}
	for _, ws := range d.Status().Workers {
		if ws.State != wire.StateUp || ws.Errors != 0 {
			t.Fatalf("worker %s %s with %d errors; want up and none", ws.ID, ws.State, ws.Errors)
		}
	}
}

// TestAttackTimeoutOverflow: a Calc-Timeout-Ms of 9.3e12 (beyond what a
// duration holds in nanoseconds) is clamped to --max-request-timeout, not
// turned into an immediate 504; and a deadline above the cap is cut to it.
func TestAttackTimeoutOverflow(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.MaxRequestTimeout = time.Second })
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	nc := connect(t, url)
	for _, ms := range []string{"9300000000000", "9223372036854775807", strconv.Itoa(60_000)} {
		if r, code := request(t, nc, "add 2 3", 10*time.Second, wire.HdrTimeout, ms); code != 0 {
			t.Fatalf("Calc-Timeout-Ms %s: %d %s; want a result", ms, code, r.Data)
		}
	}
	// A minute asked, a second allowed: a 3 s job ends at the cap.
	if r, code := request(t, nc, "sleep 3000", 10*time.Second, wire.HdrTimeout, "60000"); code != wire.CodeDeadline {
		t.Fatalf("a 3 s job with a minute asked and a cap of 1 s: %d %s; want 504", code, r.Data)
	}
}

// TestAttackInflightBytes: requests that a silent worker holds are
// bounded in bytes as well as in count: past MaxInflightBytes the
// dispatcher answers 503 at once, and what it counts stays under the cap.
func TestAttackInflightBytes(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	const capBytes = 1 << 20
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.MaxInflightBytes = capBytes; c.RequestTimeout = 30 * time.Second })
	// A worker that takes every request and never answers.
	sink := connect(t, url)
	if _, err := sink.Subscribe("calc.worker.w-sink", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	heartbeatsUntilCleanup(t, sink, wire.Heartbeat{ID: "w-sink", State: wire.StateUp, StartedAt: time.Unix(1, 0)})
	waitState(t, d, up("w-sink"))

	evil := connect(t, url)
	replies := make(chan *nats.Msg, 64)
	inbox := nats.NewInbox()
	if _, err := evil.ChanSubscribe(inbox+".*", replies); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat(" ", 100<<10) + "add 1 2"
	for i := range 20 {
		m := nats.NewMsg(wire.Subjects{}.Request())
		m.Reply = inbox + "." + strconv.Itoa(i)
		m.Data = []byte(big)
		if err := evil.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	refused := 0
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for {
			select {
			case m := <-replies:
				if e := wire.ErrorFromMsg(m); e != nil && e.Code == wire.CodeUnavailable && strings.Contains(e.Message, "bytes") {
					refused++
				}
			default:
				if refused < 10 {
					return fmt.Errorf("%d refused; want the 10 or more beyond 1 MiB", refused)
				}
				return nil
			}
		}
	})
	if n := d.Stats().Inflight; n < 5 || n > 10 {
		t.Fatalf("%d in flight; want those within 1 MiB, 5 to 10", n)
	}
}
