package dispatcher_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// silenceWorker makes the dispatcher find its only worker down for
// silence: the worker's connection goes without a goodbye, and nothing
// is forwarded meanwhile.
func silenceWorker(t *testing.T, d *dispatcher.Dispatcher, w testWorker) {
	t.Helper()
	w.nc.Close()
	waitState(t, d, map[string]string{"w1": wire.StateDown})
}

// TestIdleOutageAnswers503AfterTheHold: with no traffic, every worker
// dying looks like a partition (heartbeats stopped, nothing else said):
// a request then waits at most HoldFor, and gets a 503 that says so.
func TestIdleOutageAnswers503AfterTheHold(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	const hold = 500 * time.Millisecond
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.HoldFor = hold })
	silenceWorker(t, d, startWorker(t, url, "w1", nil))
	nc := connect(t, url)
	start := time.Now()
	m, err := nc.Request(wire.Subjects{}.Request(), []byte("add 1 1"), 5*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	e := wire.ErrorFromMsg(m)
	if e == nil || e.Code != wire.CodeUnavailable || !strings.Contains(e.Message, "held") {
		t.Fatalf("reply %v %q; want a 503 after the hold", e, m.Data)
	}
	t.Logf("503 after %v: %s", took.Round(time.Millisecond), e.Message)
	if took > hold+time.Second {
		t.Fatalf("503 after %v; want within the hold (%v) and a second", took, hold)
	}
}

// TestHeldRequestIsServedWhenAWorkerComesBack: a request that arrives
// while every worker is silent is held, and answered by the first worker
// to come up within the hold.
func TestHeldRequestIsServedWhenAWorkerComesBack(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.HoldFor = time.Minute })
	silenceWorker(t, d, startWorker(t, url, "w1", nil))
	nc := connect(t, url)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	req := nats.NewMsg(wire.Subjects{}.Request())
	req.Reply = inbox
	req.Header.Set(wire.HdrProgress, "1")
	req.Data = []byte("add 2 3")
	if err := nc.PublishMsg(req); err != nil {
		t.Fatal(err)
	}
	// Its first progress message says the dispatcher holds it.
	if p, err := sub.NextMsg(5 * time.Second); err != nil || p.Header.Get(wire.HdrProgress) == "" {
		t.Fatalf("first message %v, %v; want a progress message", p, err)
	}
	startWorker(t, url, "w2", nil)
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no reply once w2 came up: %v", err)
		}
		if m.Header.Get(wire.HdrProgress) != "" {
			continue
		}
		if e := wire.ErrorFromMsg(m); e != nil || m.Header.Get(wire.HdrWorker) != "w2" {
			t.Fatalf("reply %v from %q; want the result from w2", e, m.Header.Get(wire.HdrWorker))
		}
		return
	}
}

// TestStuckRequestResumesOnAWorkerNoLongerMute: a worker whose forwards
// vanish (a cut route) while its heartbeats keep coming (it moved to a
// broker the dispatcher reaches) is never taken down; its request, stuck
// on a silent attempt with no other worker, goes to it again once it is
// no longer mute, and is answered long before its deadline.
func TestStuckRequestResumesOnAWorkerNoLongerMute(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.AttemptTimeout = time.Hour })
	wc := connect(t, url)
	var forwards, answer atomic.Int64
	if _, err := wc.Subscribe(wire.Subjects{}.Worker("w-x"), func(m *nats.Msg) {
		forwards.Add(1)
		if answer.Load() == 0 || m.Reply == "" {
			return // lost on the way
		}
		out := nats.NewMsg(m.Reply)
		out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		out.Header.Set(wire.HdrWorker, "w-x")
		out.Data = []byte(`{"op":"add","result":5,"worker":"w-x"}`)
		_ = wc.PublishMsg(out)
	}); err != nil {
		t.Fatal(err)
	}
	heartbeatsUntilCleanup(t, wc, wire.Heartbeat{ID: "w-x", Subject: wire.Subjects{}.Worker("w-x"),
		State: wire.StateUp, IntervalMS: 100, ProgressMS: 100, StartedAt: time.Now()})
	waitState(t, d, up("w-x"))
	nc := connect(t, url)
	type result struct {
		m   *nats.Msg
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		m, err := nc.Request(wire.Subjects{}.Request(), []byte("add 2 3"), 8*time.Second)
		done <- result{m, err}
	}()
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if forwards.Load() == 0 {
			return errors.New("not forwarded yet")
		}
		return nil
	})
	answer.Store(1) // its route is back
	r := <-done
	took := time.Since(start)
	if r.err != nil {
		t.Fatalf("request: %v", r.err)
	}
	if e := wire.ErrorFromMsg(r.m); e != nil {
		t.Fatalf("reply %v; want the result", e)
	}
	t.Logf("answered after %v and %d forwards", took.Round(time.Millisecond), forwards.Load())
	if n := forwards.Load(); n < 2 {
		t.Fatalf("%d forwards; want the request sent again", n)
	}
}
