package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// pickFleet starts a dispatcher with the default strategy and workers a,
// b and c, c changed by modC, and waits until they are up.
func pickFleet(t *testing.T, modC func(*calcworker.Config)) (string, *dispatcher.Dispatcher) {
	t.Helper()
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "a", nil)
	startWorker(t, url, "b", nil)
	startWorker(t, url, "c", modC)
	waitState(t, d, up("a", "b", "c"))
	return url, d
}

func workerRow(d *dispatcher.Dispatcher, id string) wire.WorkerStatus {
	for _, w := range d.Status().Workers {
		if w.ID == id {
			return w
		}
	}
	return wire.WorkerStatus{}
}

// nextEvent waits for the next event on sub.
func nextEvent(t *testing.T, sub *nats.Subscription) (string, wire.Event) {
	t.Helper()
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("waiting for an event on %s: %v", sub.Subject, err)
	}
	var ev wire.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return m.Subject, ev
}

func subscribe(t *testing.T, url, subj string) *nats.Subscription {
	t.Helper()
	nc := connect(t, url)
	sub, err := nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// Among equal workers the default keeps the exact cyclic order, also
// after the picker has their figures.
func TestPickKeepsOrder(t *testing.T) {
	url, _ := pickFleet(t, nil)
	cl := newClient(t, url, nil)
	var seq []string
	for range 30 {
		res, err := cl.Do(context.Background(), "add 1 2")
		if err != nil {
			t.Fatal(err)
		}
		seq = append(seq, res.Worker)
	}
	for i := 3; i < len(seq); i++ {
		if seq[i] != seq[i-3] || seq[i] == seq[i-1] {
			t.Fatalf("workers in order = %v; want a cycle of the three", seq)
		}
	}
}

// A worker much slower than the fleet gets less than its turns, and the
// dispatcher says why, in its status and as an event.
func TestPickSlowWorkerGetsLess(t *testing.T) {
	url, d := pickFleet(t, func(c *calcworker.Config) { c.Env = calc.Env{Delay: 250 * time.Millisecond} })
	sub := subscribe(t, url, "calc.events.worker.c.slow")
	cl := newClient(t, url, nil)
	if errs := load(t, cl, 300, 6, func(int) string { return "add 1 2" }, nil); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	a, c := forwarded(d, "a"), forwarded(d, "c")
	if c*3 > a {
		t.Fatalf("forwards: a %d, c %d; want the slow c to get less than a third of a's", a, c)
	}
	if row := workerRow(d, "c"); row.Verdict != "slow" || row.Weight >= 1 || row.LatencyMS < 200 {
		t.Fatalf("c's row = %+v; want verdict slow, weight below 1, its latency", row)
	}
	if _, ev := nextEvent(t, sub); ev.Kind != "slow" || ev.Worker != "c" || !strings.Contains(ev.Reason, "latency") {
		t.Fatalf("event %+v; want c slow, with its latency", ev)
	}
}

// A worker that fails everything at once is seen after its first
// failures and gets almost nothing after; the clients see no error.
func TestPickFailingWorkerSkipped(t *testing.T) {
	url, d := pickFleet(t, func(c *calcworker.Config) { c.FailRate = 1 })
	sub := subscribe(t, url, "calc.events.worker.c.>")
	cl := newClient(t, url, nil)
	cmd := func(int) string { return "add 1 2" }
	if errs := load(t, cl, 30, 6, cmd, nil); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if v := workerRow(d, "c"); v.Verdict != "failing" && v.State != wire.StateEjected {
			return fmt.Errorf("c's row = %+v; want it failing or ejected", v)
		}
		return nil
	})
	before := map[string]uint64{}
	for _, id := range []string{"a", "b", "c"} {
		before[id] = forwarded(d, id)
	}
	if errs := load(t, cl, 300, 6, cmd, nil); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	var all uint64
	for id, n := range before {
		all += forwarded(d, id) - n
	}
	if c := forwarded(d, "c") - before["c"]; c*20 > all {
		t.Fatalf("c got %d of %d forwards once seen failing; want at most 5%%", c, all)
	}
	for {
		subj, ev := nextEvent(t, sub)
		if ev.Kind == "failing" || ev.Kind == wire.StateEjected {
			break // the reason it is passed over
		}
		if ev.Kind != wire.StateUp {
			t.Fatalf("event %s %+v before c was seen failing", subj, ev)
		}
	}
}

// A worker back in rotation ramps up to its share: it takes less than
// the others at first, and says it is warming up.
func TestPickRejoinRamps(t *testing.T) {
	url, d := pickFleet(t, nil)
	started := time.Now()
	sub := subscribe(t, url, "calc.events.worker.c.warming")
	cl := newClient(t, url, nil)
	cmd := func(int) string { return "add 1 2" }
	if errs := load(t, cl, 60, 6, cmd, nil); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	// Workers that come up while the table fills take their share at
	// once; one that comes back later ramps.
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if time.Since(started) < 2*testDeadAfter {
			return errors.New("the table is still filling")
		}
		return nil
	})
	if err := d.Drain("c"); err != nil {
		t.Fatal(err)
	}
	if err := d.Resume("c"); err != nil {
		t.Fatal(err)
	}
	before := map[string]uint64{"a": forwarded(d, "a"), "c": forwarded(d, "c")}
	if errs := load(t, cl, 150, 6, cmd, nil); len(errs) > 0 {
		t.Fatal(errs[0])
	}
	a, c := forwarded(d, "a")-before["a"], forwarded(d, "c")-before["c"]
	if c >= a || c == 0 {
		t.Fatalf("after its return: a got %d, c %d; want c ramping, below a", a, c)
	}
	if _, ev := nextEvent(t, sub); ev.Kind != "warming" || !strings.Contains(ev.Reason, "slow start") {
		t.Fatalf("event %+v; want c warming", ev)
	}
}
