package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestLongJobsRunOnce: jobs far longer than the attempt timeout, on
// workers that send progress messages, are forwarded once, sent once by
// their client, and never count against their worker.
func TestLongJobsRunOnce(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.AttemptTimeout = 100 * time.Millisecond // for workers without progress only
		c.Outlier = dispatcher.OutlierConfig{Consecutive: 1, BaseEjection: time.Minute}
	})
	startWorker(t, url, "w-a", nil)
	startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	cl := newClient(t, url, nil)
	var wg sync.WaitGroup
	results := make([]*client.Result, 4)
	errs := make([]error, 4)
	for i, cmd := range []string{"sleep 1200", "spin 800", "sleep 1000", "add 1 2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = cl.Do(context.Background(), cmd)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r := results[i]; r.Sends != 1 || r.Attempts != 1 {
			t.Errorf("request %d: %d sends, %d attempts; want 1 and 1", i, r.Sends, r.Attempts)
		}
	}
	if n := forwarded(d, "w-a") + forwarded(d, "w-b"); n != 4 {
		t.Errorf("forwarded %d times; want 4", n)
	}
	for _, w := range d.Status().Workers {
		if w.State != wire.StateUp || w.Errors != 0 {
			t.Errorf("worker %s: %s with %d errors; want up with none", w.ID, w.State, w.Errors)
		}
	}
	if st := d.Stats(); st.Retries != 0 {
		t.Errorf("stats = %+v; want no retries", st)
	}
}

// TestSilentAttemptFailsOver: a worker that announces progress messages
// but sends none (hung) loses its request to another worker after 4 of
// its intervals, not after the attempt timeout.
func TestSilentAttemptFailsOver(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.AttemptTimeout = time.Hour
	})
	// A worker that takes requests, announces progress, and says nothing.
	hung := connect(t, url)
	if _, err := hung.Subscribe(wire.Subjects{}.Worker("w-hung"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	heartbeatsUntilCleanup(t, hung, wire.Heartbeat{ID: "w-hung", Subject: wire.Subjects{}.Worker("w-hung"),
		State: wire.StateUp, IntervalMS: 100, ProgressMS: 100, StartedAt: time.Now()})
	waitState(t, d, up("w-hung"))
	startWorker(t, url, "w-ok", nil)
	waitState(t, d, up("w-hung", "w-ok"))
	cl := newClient(t, url, nil)
	hit := 0
	for i := range 6 {
		r, err := cl.Do(context.Background(), fmt.Sprintf("add %d 1", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r.Attempts == 2 {
			hit++
			if r.Latency > 3*time.Second {
				t.Errorf("request %d failed over after %v; want about 400ms", i, r.Latency)
			}
		}
		if r.Worker != "w-ok" || r.Sends != 1 {
			t.Errorf("request %d: from %s in %d sends; want w-ok, 1", i, r.Worker, r.Sends)
		}
	}
	if hit == 0 {
		t.Errorf("no request went to the hung worker first")
	}
}

// TestCancelAndDeadlineReachTheWorkers: a hedged request's slower attempt
// is cancelled when the first reply goes out, and a request without
// Calc-Timeout-Ms (as nats req sends it) stops on its worker at the
// dispatcher's deadline.
func TestCancelAndDeadlineReachTheWorkers(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.HedgeAfter = 100 * time.Millisecond
		c.RequestTimeout = 400 * time.Millisecond
	})
	wa := startWorker(t, url, "w-a", nil)
	wb := startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	cl := newClient(t, url, nil)
	r, err := cl.Do(context.Background(), "sleep 1000")
	if err != nil {
		t.Fatal(err)
	}
	if r.Attempts != 2 {
		t.Fatalf("attempts = %d; want 2 (a hedge)", r.Attempts)
	}
	other := wa
	if r.Worker == "w-a" {
		other = wb
	}
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if st := other.Stats(); st.Inflight != 0 {
			return fmt.Errorf("%s still holds %d", other.ID(), st.Inflight)
		}
		return nil
	})
	if st := other.Stats(); st.Served != 0 {
		t.Errorf("%s answered the cancelled request: %+v", other.ID(), st)
	}

	// No deadline from the client: the dispatcher's 400ms reaches the worker.
	nc := connect(t, url)
	start := time.Now()
	m, err := nc.Request(wire.Subjects{}.Request(), []byte("sleep 3000"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ErrorFromMsg(m); e == nil || e.Code != wire.CodeDeadline {
		t.Fatalf("reply %s %v; want 504", m.Data, m.Header)
	}
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if a, b := wa.Stats().Inflight, wb.Stats().Inflight; a+b != 0 {
			return fmt.Errorf("workers still hold %d and %d", a, b)
		}
		return nil
	})
	if el := time.Since(start); el > 2500*time.Millisecond {
		t.Errorf("the workers stopped after %v; want soon after the 400ms deadline", el)
	}
}

// heartbeatsUntilCleanup publishes hb every 100ms until the test ends.
func heartbeatsUntilCleanup(t testing.TB, nc *nats.Conn, hb wire.Heartbeat) {
	t.Helper()
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			hb.Seq++
			b, _ := json.Marshal(hb)
			_ = nc.Publish(wire.Subjects{}.Heartbeat(hb.ID), b)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}
