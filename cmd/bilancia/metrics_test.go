package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
	"github.com/bilancia/bilancia/internal/testutil"
)

// metricsPort returns a loopback port that was free a moment ago.
func metricsPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scrapeLinted scrapes url, and fails t if a metric there, the Go
// runtime's included, breaks Prometheus's naming.
func scrapeLinted(t *testing.T, url string) metricstest.Families {
	t.Helper()
	f, err := metricstest.Scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := f.Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("%s: promlint: %v\n%s", url, err, strings.Join(problems, "\n"))
	}
	return f
}

// TestMetricsFlags runs broker --dispatcher and worker --replicas 2 with
// --metrics: the broker's endpoint serves its own figures and its
// dispatcher's, the worker's its workers', all counting the requests sent.
func TestMetricsFlags(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	port := metricsPort(t)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	bm, wm := "127.0.0.1:"+strconv.Itoa(metricsPort(t)), "127.0.0.1:"+strconv.Itoa(metricsPort(t))
	b := &BrokerCmd{Host: "127.0.0.1", Port: port, Dispatcher: true, Prefix: "calc", AuthPoll: -time.Second,
		DispatcherFlags: testDispatcherFlags(t), Metrics: bm}
	w := &WorkerCmd{NATSFlags: NATSFlags{NATS: url, Prefix: "calc"}, ID: "w-m", Replicas: 2, Heartbeat: 100 * time.Millisecond,
		WorkerFlags: WorkerFlags{Concurrency: 4, MaxSleep: time.Second, MaxSpin: time.Second}, Metrics: wm}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	errs := make(chan error, 2)
	go func() { errs <- b.Run(&globals{ctx: ctx}) }()
	var cl *client.Client
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() (err error) {
		cl, err = client.Connect(client.Config{URL: url, Timeout: 5 * time.Second})
		return err
	})
	defer cl.Close()
	go func() { errs <- w.Run(&globals{ctx: ctx}) }()
	addTwoAndThree(t, cl) // the dispatcher knows a worker
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		f, err := metricstest.Scrape("http://" + bm + "/metrics")
		if err != nil {
			return err
		}
		if up, _ := f.Value("bilancia_dispatcher_workers", "state", "up"); up != 2 {
			return fmt.Errorf("workers up = %v; want 2", up)
		}
		return nil
	})
	before := scrapeLinted(t, "http://"+bm+"/metrics")
	beforeW := scrapeLinted(t, "http://"+wm+"/metrics")
	const n = 10
	for range n {
		if _, err := cl.Do(context.Background(), "add 2 3"); err != nil {
			t.Fatal(err)
		}
	}
	after := scrapeLinted(t, "http://"+bm+"/metrics")
	afterW := scrapeLinted(t, "http://"+wm+"/metrics")
	grew := func(before, after metricstest.Families, name string, labels ...string) float64 {
		a, ok := after.Value(name, labels...)
		if !ok {
			t.Errorf("no %s%v", name, labels)
		}
		b, _ := before.Value(name, labels...)
		return a - b
	}
	if d := grew(before, after, "bilancia_dispatcher_requests_total", "status", "200"); d != n {
		t.Errorf("dispatcher's 200s grew by %v; want %d", d, n)
	}
	if d := grew(before, after, "bilancia_dispatcher_request_duration_seconds"); d != n {
		t.Errorf("dispatcher's latency count grew by %v; want %d", d, n)
	}
	if d := grew(before, after, "bilancia_broker_client_received_messages_total"); d < 2*n {
		t.Errorf("broker's messages from clients grew by %v; want at least %d (requests and replies)", d, 2*n)
	}
	if d := grew(beforeW, afterW, "bilancia_worker_requests_total", "op", "add", "status", "200"); d != n {
		t.Errorf("workers' adds grew by %v; want %d", d, n)
	}
	for _, c := range []struct {
		f    metricstest.Families
		name string
		want float64
	}{
		{after, "bilancia_broker_connections", 3}, // the client, the worker process, the dispatcher's in-process one
		{afterW, "bilancia_worker_workers", 2},
	} {
		if err := c.f.Want(c.want, c.name); err != nil {
			t.Error(err)
		}
	}
	for _, f := range []metricstest.Families{after, afterW} {
		if _, ok := f.Value("go_goroutines"); !ok {
			t.Error("no go_goroutines: the Go runtime's figures are missing")
		}
	}
	cl.Close()
	stop()
	waitRoles(t, errs, 2)
}

// TestUpMetrics: up --metrics serves the broker's, the dispatcher's and
// the workers' metrics on one endpoint, here while a request is held, and
// stops serving them when it ends.
func TestUpMetrics(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addr := "127.0.0.1:" + strconv.Itoa(metricsPort(t))
	up := &UpCmd{
		Host: "127.0.0.1", Port: -1, Prefix: "calc", Workers: 2, Metrics: addr,
		DispatcherFlags: testDispatcherFlags(t),
		WorkerFlags:     WorkerFlags{Concurrency: 4, MaxSleep: time.Minute, MaxSpin: time.Second},
		ClientFlags:     ClientFlags{Timeout: time.Minute, Retries: 0, Inflight: 1, Quiet: true},
		// Held long enough for the scrapes of a slow machine, and then
		// answered: up ends, its workers having nothing left to drain.
		Command: []string{"sleep 4000"},
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- up.Run(&globals{ctx: ctx}) }()
	testutil.CheckFor(t, 20*time.Second, 10*time.Millisecond, func() error {
		f, err := metricstest.Scrape("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		for _, c := range []struct {
			name string
			want float64
		}{
			{"bilancia_dispatcher_requests_in_flight", 1},
			{"bilancia_worker_requests_in_flight", 1},
			{"bilancia_worker_workers", 2},
		} {
			if err := f.Want(c.want, c.name); err != nil {
				return err
			}
		}
		if got, ok := f.Value("bilancia_broker_connections"); !ok || got < 1 {
			return fmt.Errorf("broker connections = %v (found: %v); want at least 1", got, ok)
		}
		return nil
	})
	scrapeLinted(t, "http://"+addr+"/metrics")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up still runs 30s after its command was sent")
	}
	if _, err := metricstest.Scrape("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after up ended")
	}
}

// TestMetricsAddressTaken: a --metrics address that cannot be listened on
// stops each role before it starts anything, with an error that says so.
func TestMetricsAddressTaken(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	port := metricsPort(t)
	// Nothing answers there: a role past --metrics would fail otherwise.
	nf := NATSFlags{NATS: "nats://127.0.0.1:" + strconv.Itoa(port), Prefix: "calc"}
	for _, tc := range []struct {
		name string
		role interface{ Run(*globals) error }
	}{
		{"dispatcher", &DispatcherCmd{NATSFlags: nf, DispatcherFlags: testDispatcherFlags(t), Metrics: addr}},
		{"worker", &WorkerCmd{NATSFlags: nf, Replicas: 1, Metrics: addr}},
		{"broker", &BrokerCmd{Host: "127.0.0.1", Port: port, Prefix: "calc", AuthPoll: -time.Second, Metrics: addr}},
		{"up", &UpCmd{Host: "127.0.0.1", Port: port, Prefix: "calc", Workers: 1, Metrics: addr,
			DispatcherFlags: testDispatcherFlags(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := tc.role.Run(&globals{ctx: ctx})
			if err == nil || !strings.Contains(err.Error(), "metrics") || !strings.Contains(err.Error(), addr) {
				t.Fatalf("Run = %v; want an error naming metrics and %s", err, addr)
			}
			// The broker never listened.
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				t.Fatalf("port %d taken after the role refused to start: %v", port, err)
			}
			l.Close()
		})
	}
}
