package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// ctl sends a control request and gathers the replies of n dispatchers.
func ctl(t *testing.T, nc *nats.Conn, verb, worker string, n int) []*nats.Msg {
	t.Helper()
	inbox := nc.NewInbox()
	ch := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	var data []byte
	if verb != wire.CtlList {
		data, _ = json.Marshal(wire.CtlRequest{Worker: worker})
	}
	if err := nc.PublishRequest(wire.Subjects{}.Ctl(verb), inbox, data); err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for len(out) < n {
		select {
		case m := <-ch:
			out = append(out, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("ctl %s %s: %d replies; want %d", verb, worker, len(out), n)
		}
	}
	return out
}

func ctlReplies(t *testing.T, ms []*nats.Msg) []wire.CtlReply {
	t.Helper()
	var out []wire.CtlReply
	for _, m := range ms {
		if e := wire.ErrorFromMsg(m); e != nil {
			t.Fatalf("ctl reply: %v", e)
		}
		var r wire.CtlReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestCtlDrain: a drain over NATS reaches every dispatcher; none forwards
// to the worker while its heartbeats go on; a dispatcher started later
// learns the drain; resume puts it back everywhere.
func TestCtlDrain(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d1 := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID = "d-1" })
	d2 := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID = "d-2" })
	startWorker(t, url, "w-1", nil)
	startWorker(t, url, "w-2", nil)
	waitState(t, d1, up("w-1", "w-2"))
	waitState(t, d2, up("w-1", "w-2"))
	nc := connect(t, url)

	for _, r := range ctlReplies(t, ctl(t, nc, wire.CtlDrain, "w-1", 2)) {
		if !r.Known || !r.Changed || r.State != wire.StateUp || !slices.Equal(r.Drained, []string{"w-1"}) {
			t.Fatalf("drain reply = %+v; want w-1 known, changed, up, drained", r)
		}
	}
	before := forwarded(d1, "w-1") + forwarded(d2, "w-1")
	lastBeat := func(d *dispatcher.Dispatcher) time.Time {
		for _, w := range d.Status().Workers {
			if w.ID == "w-1" {
				return w.LastHeartbeat
			}
		}
		return time.Time{}
	}
	drainedAt := lastBeat(d1)
	cl := newClient(t, url, nil)
	if errs := load(t, cl, 40, 4, func(i int) string { return fmt.Sprintf("add %d 1", i) }, nil); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	// Its heartbeats went on, and did not bring it back.
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !lastBeat(d1).After(drainedAt.Add(2 * testHeartbeat)) {
			return errors.New("no new heartbeat from w-1 yet")
		}
		return nil
	})
	if n := forwarded(d1, "w-1") + forwarded(d2, "w-1"); n != before {
		t.Fatalf("drained w-1 got %d forwards", n-before)
	}
	for _, d := range []*dispatcher.Dispatcher{d1, d2} {
		st := d.Status()
		for _, w := range st.Workers {
			if w.ID == "w-1" && (!w.Drained || w.State != wire.StateUp) {
				t.Fatalf("%s: w-1 = %+v; want up and drained", d.ID(), w)
			}
		}
		if !slices.Equal(st.Drained, []string{"w-1"}) {
			t.Fatalf("%s: Drained = %v", d.ID(), st.Drained)
		}
	}

	d3 := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID = "d-3" })
	if got := d3.Drained(); !slices.Equal(got, []string{"w-1"}) {
		t.Fatalf("a dispatcher started later: Drained() = %v; want [w-1]", got)
	}

	for _, r := range ctlReplies(t, ctl(t, nc, wire.CtlResume, "w-1", 3)) {
		if !r.Changed || len(r.Drained) != 0 {
			t.Fatalf("resume reply = %+v; want changed, none drained", r)
		}
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if _, err := cl.Do(context.Background(), "add 1 1"); err != nil {
			return err
		}
		if forwarded(d1, "w-1")+forwarded(d2, "w-1")+forwarded(d3, "w-1") == before {
			return errors.New("w-1 gets no forwards after resume")
		}
		return nil
	})
}

// TestDrainKeepsInflight: a drained worker answers what it holds; with no
// other worker, a new request gets its 503 at once.
func TestDrainKeepsInflight(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-1", nil)
	waitState(t, d, up("w-1"))
	cl := newClient(t, url, nil)
	done := make(chan error, 1)
	go func() {
		_, err := cl.Do(context.Background(), "sleep 300")
		done <- err
	}()
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if d.Stats().Inflight != 1 {
			return errors.New("the slow request is not in flight yet")
		}
		return nil
	})
	if err := d.Drain("w-1"); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Do(context.Background(), "add 1 1")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("a request with the only worker drained: %v; want a 503", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the request the drained worker held: %v", err)
	}
}

// TestCtlBadRequest: a bad id or verb gets a 400 and changes nothing.
func TestCtlBadRequest(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	nc := connect(t, url)
	for _, c := range []struct{ subject, data string }{
		{"calc.ctl.drain", `{"worker":"a.b"}`},
		{"calc.ctl.drain", `{"worker":""}`},
		{"calc.ctl.drain", `not json`},
		{"calc.ctl.explode", `{"worker":"w-1"}`},
	} {
		m, err := nc.Request(c.subject, []byte(c.data), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if e := wire.ErrorFromMsg(m); e == nil || e.Code != wire.CodeBadRequest {
			t.Errorf("%s %s: %v, %s; want a 400", c.subject, c.data, e, m.Data)
		}
	}
	if got := d.Drained(); len(got) != 0 {
		t.Fatalf("Drained() = %v after bad requests", got)
	}
	if natsutil.IsNoResponders(ctl(t, nc, wire.CtlList, "", 1)[0]) {
		t.Fatal("no responders to a list")
	}
}
