package dispatcher_test

import (
	"context"
	"fmt"
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

// killable starts a dispatcher whose connection the test closes, as a
// SIGKILL would: its subscriptions go at once, nothing is answered.
func killable(t *testing.T, url, id string) func() {
	nc := connect(t, url)
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Conn, c.ID = nc, id })
	return func() {
		nc.Close()
		// What it held is lost with it: no need to wait for it.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = d.Shutdown(ctx)
	}
}

// orphanRig: a worker, a dispatcher d1 holding a long job on it, and the
// client that sent it; d2 starts (once the job is d1's), then d1 dies.
// silence is the client's.
func orphanRig(t *testing.T, cmd string, silence time.Duration) (d2 *dispatcher.Dispatcher, w testWorker, res chan *client.Result) {
	url := brokertest.Run(t).ClientURL()
	kill := killable(t, url, "d1")
	w = startWorker(t, url, "w-long", func(c *calcworker.Config) { c.Progress = 20 * time.Millisecond })
	cl := newClient(t, url, func(c *client.Config) { c.ProgressSilence, c.Timeout = silence, 30*time.Second })
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if _, err := cl.Do(context.Background(), "add 1 1"); err != nil {
			return err // until d1 knows the worker
		}
		return nil
	})
	res = make(chan *client.Result, 1)
	go func() {
		r, err := cl.Do(context.Background(), cmd)
		if err != nil {
			t.Errorf("%s: %v", cmd, err)
		}
		res <- r
	}()
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := w.Stats().Inflight; n != 1 {
			return fmt.Errorf("worker holds %d; want the job", n)
		}
		return nil
	})
	d2 = startDispatcher(t, url, func(c *dispatcher.Config) { c.ID = "d2" })
	kill()
	return d2, w, res
}

// TestReplyOutlivesItsDispatcher: a long job's dispatcher dies while the
// worker computes it. The worker hands its reply over, d2 keeps it, and
// the client's resend, arriving later, is answered with it: the job ran
// once (before, d2 sent it to the worker again).
func TestReplyOutlivesItsDispatcher(t *testing.T) {
	// The resend comes 5 s after d1's last progress message, the hand-over
	// as the sleep ends: the order holds on a machine that stalls.
	d2, w, res := orphanRig(t, "sleep 300", 5*time.Second)
	r := <-res
	if r == nil {
		t.FailNow()
	}
	if r.Dispatcher != "d2" || r.Worker != "w-long" || r.Attempts != 0 || r.Sends != 2 {
		t.Fatalf("reply from %s via %s, %d attempts, %d sends; want w-long's via d2, 0 attempts (none of d2's), 2 sends",
			r.Worker, r.Dispatcher, r.Attempts, r.Sends)
	}
	if n := forwarded(d2, "w-long"); n != 0 {
		t.Errorf("d2 forwarded %d to the worker; want 0", n)
	}
	if st := w.Stats(); st.Served != 2 || st.HandedOver != 1 {
		t.Errorf("worker stats %+v; want 2 served (the warm-up and the job), 1 handed over", st)
	}
}

// TestOrphanEndsTheResend: the resend reaches d2 first and goes to the
// worker again; the reply handed over answers it, and the second run is
// cancelled, never answered.
func TestOrphanEndsTheResend(t *testing.T) {
	d2, w, res := orphanRig(t, "sleep 1500", 100*time.Millisecond)
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if n := forwarded(d2, "w-long"); n != 1 {
			return fmt.Errorf("d2 forwarded %d; want the resend", n)
		}
		return nil
	})
	r := <-res
	if r == nil {
		t.FailNow()
	}
	if r.Dispatcher != "d2" || r.Worker != "w-long" || r.Attempts != 1 {
		t.Fatalf("reply from %s via %s, %d attempts; want w-long's via d2, 1 attempt", r.Worker, r.Dispatcher, r.Attempts)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := w.Stats(); st.Inflight != 0 || st.Served != 2 || st.HandedOver != 1 {
			return fmt.Errorf("worker stats %+v; want nothing in flight, 2 served (the warm-up and the first run: the second was cancelled), 1 handed over", st)
		}
		return nil
	})
}

// TestLongReplyIsAcknowledged: a worker's reply that carries a reply
// subject (a long job's: its bounce subject) is acknowledged there with
// an empty message once relayed; a reply without one gets nothing.
func TestLongReplyIsAcknowledged(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	nc := connect(t, url)
	acks, err := nc.SubscribeSync("_INBOX.test.bounce.*")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if _, err := nc.Subscribe("calc.worker.w-fake", func(m *nats.Msg) {
		if m.Reply == "" {
			return // a cancel
		}
		n++
		out := nats.NewMsg(m.Reply)
		out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		out.Header.Set(wire.HdrWorker, "w-fake")
		out.Data = []byte(`{"result":5}`)
		if n == 2 {
			out.Reply = "_INBOX.test.bounce.2" // the second as a long job's
		}
		_ = nc.PublishMsg(out)
	}); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, nc, "w-fake", 1)
	waitState(t, d, up("w-fake"))
	cl := newClient(t, url, nil)
	for range 2 {
		if _, err := cl.Do(context.Background(), "add 2 3"); err != nil {
			t.Fatal(err)
		}
	}
	m, err := acks.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no acknowledgement: %v", err)
	}
	if m.Subject != "_INBOX.test.bounce.2" || len(m.Data) != 0 || m.Header != nil {
		t.Fatalf("acknowledgement on %s: %v %q; want an empty message on _INBOX.test.bounce.2, the second reply's", m.Subject, m.Header, m.Data)
	}
}
