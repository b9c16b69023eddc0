package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestWorkerConnectionClosedMidLoad(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.AttemptTimeout = 500 * time.Millisecond })
	var ws []testWorker
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		ws = append(ws, startWorker(t, url, id, nil))
	}
	waitState(t, d, up("w-a", "w-b", "w-c"))
	cl := newClient(t, url, nil)

	var done atomic.Int64
	go func() {
		for done.Load() < 100 {
			time.Sleep(time.Millisecond)
		}
		ws[1].nc.Close() // abrupt: no draining heartbeat, replies in flight lost
	}()
	errs := load(t, cl, 600, 16, func(i int) string { return fmt.Sprintf("mul %d 2", i) }, &done)
	if len(errs) > 0 {
		t.Fatalf("%d of 600 requests failed; first: %v", len(errs), errs[0])
	}
	waitState(t, d, map[string]string{"w-b": wire.StateDown})
	st := d.Stats()
	if st.Failed != 0 {
		t.Fatalf("dispatcher failed %d requests; want 0", st.Failed)
	}
}

func TestDrainingWorkerLeavesRotation(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	var ws []testWorker
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		ws = append(ws, startWorker(t, url, id, nil))
	}
	waitState(t, d, up("w-a", "w-b", "w-c"))
	cl := newClient(t, url, nil)

	var done atomic.Int64
	drained := make(chan error, 1)
	go func() {
		for done.Load() < 100 {
			time.Sleep(time.Millisecond)
		}
		drained <- ws[0].Shutdown(context.Background())
	}()
	errs := load(t, cl, 500, 16, func(i int) string { return fmt.Sprintf("sleep %d", i%3) }, &done)
	if len(errs) > 0 {
		t.Fatalf("%d of 500 requests failed while a worker drained; first: %v", len(errs), errs[0])
	}
	if err := <-drained; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// It said draining, then went silent: draining, or down once silent.
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, w := range d.Status().Workers {
			if w.ID == "w-a" && w.State != wire.StateDraining && !(w.State == wire.StateDown && w.Reason == "left after draining") {
				return fmt.Errorf("drained worker is %s (%s); want draining, or down after draining", w.State, w.Reason)
			}
		}
		return nil
	})
	// No new request reaches it.
	before := forwarded(d, "w-a")
	if errs := load(t, cl, 30, 4, func(i int) string { return "add 1 1" }, nil); len(errs) > 0 {
		t.Fatalf("after drain: %v", errs[0])
	}
	if after := forwarded(d, "w-a"); after != before {
		t.Fatalf("drained worker got %d forwards after it left", after-before)
	}
}

func TestHeartbeatExpiryAndReturn(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	nc := connect(t, url)
	heartbeat(t, nc, "w-silent", 1)
	waitState(t, d, up("w-silent"))
	// No more heartbeats: down after DeadAfter, with the reason.
	waitState(t, d, map[string]string{"w-silent": wire.StateDown})
	for _, w := range d.Status().Workers {
		if w.ID == "w-silent" && w.Reason == "" {
			t.Fatalf("down without a reason")
		}
	}
	heartbeat(t, nc, "w-silent", 2)
	waitState(t, d, up("w-silent"))
}

// TestSilentButServingWorkerIsTriedWhenNoneIsLive covers a stall that
// silences every heartbeat: a worker marked down for silence alone still
// gets requests while no worker is live, instead of every request failing.
func TestSilentButServingWorkerIsTriedWhenNoneIsLive(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	// One heartbeat at start, then none for an hour.
	startWorker(t, url, "w-quiet", func(c *calcworker.Config) { c.Heartbeat = time.Hour })
	waitState(t, d, map[string]string{"w-quiet": wire.StateDown})
	cl := newClient(t, url, nil)
	r, err := cl.Do(context.Background(), "add 40 2")
	if err != nil || r.ResultString() != "42" || r.Worker != "w-quiet" {
		t.Fatalf("Do = %+v, %v; want 42 from w-quiet", r, err)
	}
}

// TestNoRespondersOnAWorkersSubject: a worker that heartbeats but has no
// subscription makes the broker answer "no responders" on its reply
// subject, which carries no request id. The dispatcher takes it out and
// sends the request on at once: with an attempt timeout far beyond the
// client's deadline, a request left waiting on it would fail.
func TestNoRespondersOnAWorkersSubject(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.AttemptTimeout = time.Minute })
	startWorker(t, url, "w-real", nil)
	ghost := connect(t, url)
	beat := func() {
		b, _ := json.Marshal(wire.Heartbeat{ID: "w-ghost", Subject: wire.Subjects{}.Worker("w-ghost"),
			State: wire.StateUp, IntervalMS: testHeartbeat.Milliseconds(), StartedAt: time.Now()})
		if err := ghost.Publish(wire.Subjects{}.Heartbeat("w-ghost"), b); err != nil {
			t.Error(err)
		}
	}
	beat()
	waitState(t, d, up("w-real", "w-ghost"))
	cl := newClient(t, url, func(c *client.Config) { c.Timeout = 3 * time.Second; c.MaxAttempts = 1 })
	for i := range 20 {
		beat() // back in rotation, if it was taken out
		if _, err := cl.Do(context.Background(), fmt.Sprintf("add %d 1", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if st := d.Stats(); st.Failed != 0 {
		t.Fatalf("dispatcher failed %d requests; want 0", st.Failed)
	}
}

// TestBadHeartbeatsChangeNothing: heartbeats whose worker id could not be a
// subject token (ids name the worker's subjects) or that are not JSON are
// logged and dropped; a good one sent after them on the same connection
// shows they were handled.
func TestBadHeartbeatsChangeNothing(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	nc := connect(t, url)
	beat := func(id string) {
		b, _ := json.Marshal(wire.Heartbeat{ID: id, State: wire.StateUp, IntervalMS: 100, StartedAt: time.Now()})
		subj := wire.Subjects{}.Heartbeat("x")
		if wire.ValidID(id) {
			subj = wire.Subjects{}.Heartbeat(id)
		}
		if err := nc.Publish(subj, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"", "a.b", "t.5", "x y", "w-*", "w->", strings.Repeat("w", 65), "w-\u00e8"} {
		beat(id)
	}
	for _, raw := range []string{"", "{", "null", `{"id":5}`, "\xff"} {
		if err := nc.Publish(wire.Subjects{}.Heartbeat("x"), []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	beat("w-ok")
	waitState(t, d, up("w-ok"))
	if ws := d.Status().Workers; len(ws) != 1 {
		t.Fatalf("workers = %+v; want only w-ok", ws)
	}
}

// TestHeartbeatsOnAPacedConnection: with heartbeats on a connection of
// their own, read in batches, workers still come up, serve, and go down
// when they fall silent.
func TestHeartbeatsOnAPacedConnection(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	hb, err := nats.Connect(url, nats.SetCustomDialer(dispatcher.PacedDialer{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hb.Close)
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.HeartbeatConn = hb })
	startWorker(t, url, "w-a", nil)
	b := startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	cl := newClient(t, url, nil)
	for i := range 10 {
		if _, err := cl.Do(context.Background(), fmt.Sprintf("add %d 1", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if hb.Stats().InMsgs == 0 {
		t.Fatal("no heartbeat came in on the heartbeat connection")
	}
	b.nc.Close() // silent from now on
	waitState(t, d, map[string]string{"w-a": wire.StateUp, "w-b": wire.StateDown})
}
