package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestAttackClientSlots: one client sending long jobs holds at most
// MaxClientInflight of them; the rest are answered 503 at once, and
// another client is served meanwhile.
func TestAttackClientSlots(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.MaxClientInflight = 4 })
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))

	hog := connect(t, url)
	replies := make(chan *nats.Msg, 16)
	inbox := nats.NewInbox()
	if _, err := hog.ChanSubscribe(inbox+".*", replies); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		m := nats.NewMsg(wire.Subjects{}.Request())
		m.Reply = fmt.Sprintf("%s.%d", inbox, i)
		m.Header.Set(wire.HdrClient, "hog")
		m.Header.Set(wire.HdrTimeout, "30000")
		m.Data = []byte("sleep 3000")
		if err := hog.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	refused := 0
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for {
			select {
			case m := <-replies:
				if e := wire.ErrorFromMsg(m); e != nil && e.Code == wire.CodeUnavailable {
					refused++
				}
			default:
				if refused != n-4 {
					return fmt.Errorf("%d refused; want %d", refused, n-4)
				}
				return nil
			}
		}
	})
	other := connect(t, url)
	if r, code := request(t, other, "add 2 3", 5*time.Second, wire.HdrClient, "other"); code != 0 {
		t.Fatalf("the other client: %d %s; want a result", code, r.Data)
	}
	if n := d.Stats().Inflight; n != 4 {
		t.Fatalf("%d in flight; want the hog's 4", n)
	}
}

// TestAttackHedgeFloor: a client's Calc-Hedge-Ms of 1 is raised to
// MinHedge: a job shorter than it runs once, not on every worker.
func TestAttackHedgeFloor(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.MinHedge = 5 * time.Second })
	startWorker(t, url, "w-a", nil)
	startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	nc := connect(t, url)
	for i := range 3 {
		r, code := request(t, nc, "sleep 300", 10*time.Second, wire.HdrHedge, "1", wire.HdrRequestID, fmt.Sprintf("h-%d", i))
		if code != 0 || r.Header.Get(wire.HdrAttempts) != "1" {
			t.Fatalf("a 300 ms job with Calc-Hedge-Ms 1: %d, %s attempts; want a result from 1", code, r.Header.Get(wire.HdrAttempts))
		}
	}
}
