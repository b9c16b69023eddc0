package dispatcher_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
)

func startNode(t testing.TB, name string, routes ...string) *broker.Broker {
	t.Helper()
	return brokertest.Start(t, broker.Config{Port: -1, ServerName: name, ClusterPort: -1, Routes: routes})
}

// clusterConn connects to urls in order (the first is home) and moves to
// another node quickly when its node goes away.
func clusterConn(t testing.TB, urls ...string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond), nats.ReconnectJitter(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestClusterNodeLoss runs two dispatchers, three workers and a client on
// a three-node NATS cluster, and stops the node that a worker, a
// dispatcher and the client are connected to, under load: every request
// still gets its one correct reply.
func TestClusterNodeLoss(t *testing.T) {
	a := startNode(t, "A")
	b := startNode(t, "B", a.ClusterURL())
	c := startNode(t, "C", a.ClusterURL())
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		for _, n := range []*broker.Broker{a, b, c} {
			if n.NumRoutes() != 2 {
				return fmt.Errorf("routes not formed yet")
			}
		}
		return nil
	})
	A, B, C := a.ClientURL(), b.ClientURL(), c.ClientURL()

	var ds []*dispatcher.Dispatcher
	for i, urls := range [][]string{{A, B, C}, {B, C, A}} {
		d, err := dispatcher.New(dispatcher.Config{
			Conn: clusterConn(t, urls...), ID: fmt.Sprintf("d-%d", i), Logger: testLogger(t),
			Heartbeat: testHeartbeat, DeadAfter: testDeadAfter, AttemptTimeout: 300 * time.Millisecond,
			Tick: 2 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
		ds = append(ds, d)
	}
	for id, urls := range map[string][]string{"w-a": {A, B, C}, "w-b": {B, C, A}, "w-c": {C, A, B}} {
		w, err := calcworker.New(calcworker.Config{Conn: clusterConn(t, urls...), ID: id, Heartbeat: testHeartbeat})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	}
	for _, d := range ds {
		waitState(t, d, up("w-a", "w-b", "w-c"))
	}
	cl, err := client.Connect(client.Config{Conn: clusterConn(t, B, A, C), Name: "cluster-test",
		AttemptTimeout: 300 * time.Millisecond, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)

	var done atomic.Int64
	go func() {
		for done.Load() < 150 {
			time.Sleep(time.Millisecond)
		}
		b.Shutdown()
	}()
	var wrong atomic.Int64
	errs := load(t, cl, 800, 8, func(i int) string { return fmt.Sprintf("add %d %d", i, i) }, &done)
	if len(errs) > 0 {
		t.Fatalf("%d of 800 requests failed across the node loss; first: %v", len(errs), errs[0])
	}
	if n := wrong.Load(); n != 0 {
		t.Fatalf("%d wrong results", n)
	}
	// The worker that lived on B is back in rotation through another node.
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		r, err := cl.Do(context.Background(), "add 1 1")
		if err != nil {
			return err
		}
		for _, d := range ds {
			for _, w := range d.Status().Workers {
				if w.State != "up" {
					return fmt.Errorf("%s sees %s %s (%s)", d.ID(), w.ID, w.State, w.Reason)
				}
			}
		}
		_ = r
		return nil
	})
}

// TestRediscoverAfterReconnect: a dispatcher whose broker goes away asks
// every worker to heartbeat at once from the broker it moves to, instead
// of waiting for their next heartbeats.
func TestRediscoverAfterReconnect(t *testing.T) {
	a := startNode(t, "A")
	b := startNode(t, "B", a.ClusterURL())
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if a.NumRoutes() != 1 || b.NumRoutes() != 1 {
			return fmt.Errorf("routes not formed yet")
		}
		return nil
	})
	var asked atomic.Int64
	watch := clusterConn(t, b.ClientURL())
	if _, err := watch.Subscribe("calc.discover", func(*nats.Msg) { asked.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}
	// Until A has heard of the watcher's interest on B.
	probe := clusterConn(t, a.ClientURL())
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if err := probe.Publish("calc.discover", nil); err != nil {
			return err
		}
		if asked.Load() == 0 {
			return fmt.Errorf("a discover from A not seen on B yet")
		}
		return nil
	})
	probe.Close()
	base := asked.Load()
	d, err := dispatcher.New(dispatcher.Config{Conn: clusterConn(t, a.ClientURL(), b.ClientURL()), ID: "d-r", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if asked.Load() <= base {
			return fmt.Errorf("discover seen %d times; want once more, at start", asked.Load()-base)
		}
		return nil
	})
	started := asked.Load()
	a.Shutdown()
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		if asked.Load() <= started {
			return fmt.Errorf("no discover after the reconnect")
		}
		return nil
	})
}
