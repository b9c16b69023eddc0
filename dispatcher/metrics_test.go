package dispatcher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/metrics"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestMetricsOverHTTP scrapes a dispatcher's metrics over HTTP while real
// workers serve it: the answers counted by status and in the latency
// histogram are the requests sent, the forwards by worker add up to them,
// a worker that stops is counted down and its transitions seen, and one
// drained is counted.
func TestMetricsOverHTTP(t *testing.T) {
	b := brokertest.Run(t)
	url := b.ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-a", nil)
	wb := startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	srv, err := metrics.Serve("127.0.0.1:0", d.Registry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	cl := newClient(t, url, nil)

	const good, bad = 40, 7
	if errs := load(t, cl, good, 8, func(int) string { return "add 1 2" }, nil); len(errs) > 0 {
		t.Fatalf("add: %v", errs)
	}
	if errs := load(t, cl, bad, 4, func(int) string { return "div 1 0" }, nil); len(errs) != bad {
		t.Fatalf("div 1 0: %d errors; want %d", len(errs), bad)
	}
	f, err := metricstest.Scrape(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{dispatcher.MetricRequests, []string{"status", "200"}, good},
		{dispatcher.MetricRequests, []string{"status", "400"}, bad},
		{dispatcher.MetricRequests, []string{"status", "503"}, 0},
		{dispatcher.MetricRequestDuration, nil, good + bad},
		{"bilancia_dispatcher_requests_in_flight", nil, 0},
		{"bilancia_dispatcher_workers", []string{"state", "up"}, 2},
		{"bilancia_dispatcher_workers", []string{"state", "down"}, 0},
		{"bilancia_dispatcher_worker_state", []string{"worker", "w-a", "state", "up"}, 1},
		{"bilancia_dispatcher_worker_transitions_total", []string{"from", "none", "to", "up"}, 2},
		{"bilancia_dispatcher_ejections_total", nil, 0},
		{"bilancia_dispatcher_workers_drained", nil, 0},
	} {
		if err := f.Want(c.want, c.name, c.labels...); err != nil {
			t.Error(err)
		}
	}
	if got := f.Sum("bilancia_dispatcher_worker_forwards_total"); got != good+bad {
		t.Errorf("forwards over the workers = %v; want %v", got, good+bad)
	}
	h := f[dispatcher.MetricRequestDuration].GetMetric()[0].GetHistogram()
	if h.GetSampleSum() <= 0 {
		t.Errorf("latency sum = %v; want > 0", h.GetSampleSum())
	}
	for _, w := range []string{"w-a", "w-b"} {
		age, ok := f.Value("bilancia_dispatcher_worker_heartbeat_age_seconds", "worker", w)
		if !ok || age < 0 || age > testDeadAfter.Seconds() {
			t.Errorf("heartbeat age of %s = %v (found: %v); want within [0, %v]", w, age, ok, testDeadAfter.Seconds())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wb.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		f, err := metricstest.Scrape(srv.URL())
		if err != nil {
			return err
		}
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"bilancia_dispatcher_workers", []string{"state", "up"}, 1},
			{"bilancia_dispatcher_workers", []string{"state", "down"}, 1},
			{"bilancia_dispatcher_worker_state", []string{"worker", "w-b", "state", "down"}, 1},
			{"bilancia_dispatcher_worker_transitions_total", []string{"from", "up", "to", "draining"}, 1},
			{"bilancia_dispatcher_worker_transitions_total", []string{"from", "draining", "to", "down"}, 1},
		} {
			if err := f.Want(c.want, c.name, c.labels...); err != nil {
				return err
			}
		}
		return nil
	})
	if err := d.Drain("w-a"); err != nil {
		t.Fatal(err)
	}
	f, err = metricstest.Scrape(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Value("bilancia_dispatcher_workers_drained"); !ok || got != 1 {
		t.Errorf("workers drained = %v (found: %v); want 1", got, ok)
	}
	metricstest.CheckLint(t, d.Registry())
}

// TestMetricsCountRetries: requests sent on from a worker that announces
// progress messages and sends none count as retries, and as retries after
// a silence.
func TestMetricsCountRetries(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.AttemptTimeout = time.Hour // a retry here is the silence's
	})
	hung := connect(t, url)
	if _, err := hung.Subscribe(wire.Subjects{}.Worker("w-hung"), func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	heartbeatsUntilCleanup(t, hung, wire.Heartbeat{ID: "w-hung", Subject: wire.Subjects{}.Worker("w-hung"),
		State: wire.StateUp, IntervalMS: 100, ProgressMS: 100, StartedAt: time.Now()})
	startWorker(t, url, "w-ok", nil)
	waitState(t, d, up("w-hung", "w-ok"))
	cl := newClient(t, url, nil)
	const n = 6
	if errs := load(t, cl, n, 1, func(i int) string { return fmt.Sprintf("add %d 1", i) }, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	f, err := metricstest.Gather(d.Registry())
	if err != nil {
		t.Fatal(err)
	}
	retries, _ := f.Value("bilancia_dispatcher_retries_total")
	silence, _ := f.Value("bilancia_dispatcher_silence_retries_total")
	hung1, _ := f.Value("bilancia_dispatcher_worker_forwards_total", "worker", "w-hung")
	if hung1 == 0 || silence != hung1 || retries != silence {
		t.Errorf("forwards to w-hung %v, retries %v, after a silence %v; want all equal, not 0", hung1, retries, silence)
	}
	if got, _ := f.Value(dispatcher.MetricRequests, "status", "200"); got != n {
		t.Errorf("200s = %v; want %d", got, n)
	}
}
