package dispatcher_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestAttackHelloFlood: 5,000 hellos under one name cost the log a line
// a second for that name, the next saying how many were held back, and a
// client that says hello during the flood under its own name is logged.
func TestAttackHelloFlood(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log) })
	evil := connect(t, url)
	hello, _ := json.Marshal(wire.ClientHello{Name: "flood"})
	start := time.Now()
	for range 5000 {
		if err := evil.Publish(wire.Subjects{}.ClientConnect(), hello); err != nil {
			t.Fatal(err)
		}
	}
	other, _ := json.Marshal(wire.ClientHello{Name: "alice"})
	if err := evil.Publish(wire.Subjects{}.ClientConnect(), other); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, l := range logLines(t, &log, "client connected") {
			if l["client"] == "alice" {
				return nil
			}
		}
		return fmt.Errorf("alice's hello not logged")
	})
	flood := 0
	for _, l := range logLines(t, &log, "client connected") {
		if l["client"] == "flood" {
			flood++
		}
	}
	if limit := int(time.Since(start)/time.Second) + 1; flood == 0 || flood > limit {
		t.Fatalf("%d lines for the flood's 5,000 hellos in %v; want 1 to %d", flood, time.Since(start), limit)
	}
	testutil.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if err := evil.Publish(wire.Subjects{}.ClientConnect(), hello); err != nil {
			return err
		}
		for _, l := range logLines(t, &log, "client connected") {
			if held, _ := l["held_back"].(float64); l["client"] == "flood" && held >= 4000 {
				return nil
			}
		}
		return fmt.Errorf("no line says the flood was held back")
	})
}

// TestAttackMetricSeries: 1,500 made-up worker ids make no more than the
// bound of per-worker series; the rest are summed under worker="*", and
// the state gauge still counts every worker.
func TestAttackMetricSeries(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	evil := connect(t, url)
	const n = 1500
	for i := range n {
		id := fmt.Sprintf("evil-%04d", i)
		publishHB(t, evil, "calc.heartbeat."+id, wire.Heartbeat{ID: id, State: wire.StateUp, Seq: 1, StartedAt: time.Unix(1, 0)})
	}
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got := d.Status().Total; got != n {
			return fmt.Errorf("table of %d; want %d", got, n)
		}
		return nil
	})
	f, err := metricstest.Gather(d.Registry())
	if err != nil {
		t.Fatal(err)
	}
	mf := f["bilancia_dispatcher_worker_forwards_total"]
	if mf == nil || len(mf.Metric) > 1001 {
		t.Fatalf("%d forwards series; want at most 1,000 workers and one for the rest", len(mf.GetMetric()))
	}
	if up := f.Sum("bilancia_dispatcher_worker_state", "state", "up"); up != n {
		t.Fatalf("worker_state{state=up} sums to %v; want %d", up, n)
	}
	if rest, ok := f.Value("bilancia_dispatcher_worker_state", "worker", "*", "state", "up"); !ok || rest != n-1000 {
		t.Fatalf("worker_state{worker=*,state=up} = %v; want %d", rest, n-1000)
	}
}
