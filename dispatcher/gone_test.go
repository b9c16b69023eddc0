package dispatcher_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// gatedDialer dials as net.Dialer does, but a dial to gated waits until
// open is closed: a worker's reconnect held back by the test.
type gatedDialer struct {
	gated string
	open  chan struct{}
	once  sync.Once
}

func (g *gatedDialer) release() { g.once.Do(func() { close(g.open) }) }

func (g *gatedDialer) Dial(network, address string) (net.Conn, error) {
	if address == g.gated {
		<-g.open
	}
	return (&net.Dialer{Timeout: 5 * time.Second}).Dial(network, address)
}

// TestWorkerMovingBrokersLosesNothing: the only worker's broker dies; the
// dispatcher, on the other broker, hears "no responders" from it while it
// reconnects there, and holds the requests instead of answering 503: the
// one in flight on it and one sent meanwhile are both answered once the
// worker is back, which it says at once with a heartbeat (its next one
// would come only in a minute).
func TestWorkerMovingBrokersLosesNothing(t *testing.T) {
	a := startNode(t, "A")
	b := startNode(t, "B", a.ClusterURL())
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if a.NumRoutes() != 1 || b.NumRoutes() != 1 {
			return fmt.Errorf("routes not formed yet")
		}
		return nil
	})
	d := startDispatcher(t, b.ClientURL(), func(c *dispatcher.Config) { c.DeadAfter = 2 * time.Minute })
	gate := &gatedDialer{gated: strings.TrimPrefix(b.ClientURL(), "nats://"), open: make(chan struct{})}
	wnc, err := nats.Connect(a.ClientURL()+","+b.ClientURL(), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0), nats.SetCustomDialer(gate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	w, err := calcworker.New(calcworker.Config{Conn: wnc, ID: "w-moving", Heartbeat: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	t.Cleanup(gate.release) // before the shutdown: a reconnect held back holds the connection
	waitState(t, d, up("w-moving"))
	cl := newClient(t, b.ClientURL(), nil)

	do := func(cmd string) chan error {
		errc := make(chan error, 1)
		go func() { _, err := cl.Do(context.Background(), cmd); errc <- err }()
		return errc
	}
	long := do("sleep 400")
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if w.Stats().Inflight != 1 {
			return fmt.Errorf("the worker does not hold the sleep yet")
		}
		return nil
	})
	a.Shutdown()
	testutil.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		if b.NumRoutes() != 0 {
			return fmt.Errorf("B still routes to A") // and would send the forward there
		}
		return nil
	})
	short := do("add 2 3") // its forward finds no subscriber: the worker is between brokers
	waitState(t, d, map[string]string{"w-moving": wire.StateDown})
	gate.release()
	for name, errc := range map[string]chan error{"sleep 400": long, "add 2 3": short} {
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("%s: %v; want it answered once the worker is back", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: no answer", name)
		}
	}
}
