package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/logfile"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// system is an embedded nats-server with real workers (serving the direct
// queue group too) and a real dispatcher, in this process.
type system struct {
	url     string
	workers []*calcworker.Worker
	disp    *dispatcher.Dispatcher
}

// startSystem starts a server on a random port, n workers and a dispatcher
// with request logging to a file, as in production, and waits until the
// dispatcher sees every worker.
func startSystem(tb testing.TB, n int) *system {
	tb.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	srv := natsserver.RunServer(&opts)
	tb.Cleanup(srv.Shutdown)
	s := &system{url: srv.ClientURL()}
	connect := func(name string) *nats.Conn {
		nc, err := nats.Connect(s.url, nats.Name(name))
		if err != nil {
			tb.Fatalf("connect %s: %v", name, err)
		}
		tb.Cleanup(nc.Close)
		return nc
	}
	for i := range n {
		w, err := calcworker.New(calcworker.Config{
			Conn: connect("worker"), ID: fmt.Sprintf("tw-%d", i+1),
			Heartbeat: 50 * time.Millisecond, ServeDirect: true,
		})
		if err != nil {
			tb.Fatal(err)
		}
		if err := w.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = w.Shutdown(context.Background()) })
		s.workers = append(s.workers, w)
	}
	lf, err := logfile.Open(tb.TempDir()+"/loadbalancer.log", 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = lf.Close() })
	d, err := dispatcher.New(dispatcher.Config{
		Conn: connect("dispatcher"), Heartbeat: 50 * time.Millisecond,
		LogRequests: true, Logger: slog.New(slog.NewJSONHandler(lf, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Start(); err != nil {
		tb.Fatal(err)
	}
	// Cleanups run last-in first-out: the dispatcher stops before the
	// workers and the server.
	tb.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	s.disp = d
	testutil.CheckFor(tb, 5*time.Second, 5*time.Millisecond, func() error {
		if live := d.LiveWorkers(); live != n {
			return fmt.Errorf("dispatcher sees %d workers; want %d", live, n)
		}
		return nil
	})
	return s
}

// served returns what each worker says it served.
func (s *system) served() map[string]uint64 {
	m := map[string]uint64{}
	for _, w := range s.workers {
		m[w.ID()] = w.Stats().Served
	}
	return m
}

// checkReport checks the counts of a run that should have had no error.
func checkReport(t *testing.T, s *system, rep *Report, want uint64) {
	t.Helper()
	if rep.OK != want || rep.Sent != want || rep.Errors != 0 {
		t.Errorf("ok, sent, errors = %d, %d, %d; want %d, %d, 0 (errors: %v)",
			rep.OK, rep.Sent, rep.Errors, want, want, rep.ErrorSamples)
	}
	var sum uint64
	for _, n := range rep.Workers {
		sum += n
	}
	if sum != rep.OK {
		t.Errorf("per-worker counts %v add up to %d; want %d", rep.Workers, sum, rep.OK)
	}
	// Each worker served exactly what the report says it did.
	if got := s.served(); fmt.Sprint(got) != fmt.Sprint(rep.Workers) {
		t.Errorf("report's per-worker counts = %v; workers say they served %v", rep.Workers, got)
	}
	if rep.Latency.P50 <= 0 || rep.Latency.Max < rep.Latency.P99 || rep.Latency.P99 < rep.Latency.P50 {
		t.Errorf("latency %+v is not a distribution", rep.Latency)
	}
	if rep.Throughput <= 0 {
		t.Errorf("throughput = %v; want > 0", rep.Throughput)
	}
}

func TestRunClosedLoop(t *testing.T) {
	for _, tc := range []struct{ name, subject string }{
		{"dispatcher", ""},
		{"direct", wire.Subjects{}.Direct()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSystem(t, 3)
			rep, err := Run(context.Background(), Config{
				URL: s.url, Subject: tc.subject, Clients: 2, Concurrency: 8, Requests: 300,
				Mix: MustParseMix("add:3,fib:1"),
			})
			if err != nil {
				t.Fatalf("Run = %v", err)
			}
			checkReport(t, s, rep, 300)
			if rep.Mode != "closed" || rep.Concurrency != 8 || rep.Clients != 2 {
				t.Errorf("mode, concurrency, clients = %s, %d, %d; want closed, 8, 2", rep.Mode, rep.Concurrency, rep.Clients)
			}
			if len(rep.Workers) != 3 {
				t.Errorf("per-worker counts %v; want 3 workers", rep.Workers)
			}
			if len(rep.Ops) != 2 || rep.Ops[0].OK+rep.Ops[1].OK != 300 {
				t.Errorf("per-op reports %+v; want 2 adding up to 300", rep.Ops)
			}
			if tc.subject == "" {
				// Round robin over a stable set of 3 healthy workers.
				for id, n := range rep.Workers {
					if n != 100 {
						t.Errorf("worker %s served %d; want 100 of 300 in round robin (all: %v)", id, n, rep.Workers)
					}
				}
			}
		})
	}
}

func TestRunOpenLoop(t *testing.T) {
	s := startSystem(t, 3)
	var finals int
	rep, err := Run(context.Background(), Config{
		URL: s.url, Clients: 3, Rate: 2000, Requests: 200, MaxOutstanding: 1000,
		Progress: func(p Progress) {
			if p.Final {
				finals++
			}
		},
	})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	checkReport(t, s, rep, 200)
	if rep.Missed != 0 {
		t.Errorf("missed = %d; want 0 with a bound above the whole run", rep.Missed)
	}
	if rep.Mode != "open" || rep.Rate != 2000 {
		t.Errorf("mode, rate = %s, %v; want open, 2000", rep.Mode, rep.Rate)
	}
	if finals != 1 {
		t.Errorf("final progress calls = %d; want 1", finals)
	}
}

// A request due while the bound is reached is not sent, and counted.
func TestRunOpenLoopMissed(t *testing.T) {
	s := startSystem(t, 1)
	// Each request takes 300ms; all 10 are due within 90ms, while the
	// first is still outstanding: 1 is sent, 9 are missed.
	rep, err := Run(context.Background(), Config{
		URL: s.url, Clients: 1, Rate: 100, Requests: 10, MaxOutstanding: 1,
		Mix: MustParseMix("sleep 300"),
	})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if rep.Sent+rep.Missed != 10 || rep.Missed == 0 || rep.Errors != 0 {
		t.Errorf("sent, missed, errors = %d, %d, %d; want 10 due in all, some missed, no error",
			rep.Sent, rep.Missed, rep.Errors)
	}
}

func TestRunCountsErrors(t *testing.T) {
	s := startSystem(t, 2)
	rep, err := Run(context.Background(), Config{
		URL: s.url, Clients: 1, Concurrency: 2, Requests: 40, Mix: MustParseMix("div 1 0:1,add:1"),
	})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if rep.OK+rep.Errors != 40 || rep.Errors == 0 || rep.ErrorsByCode["400"] != rep.Errors {
		t.Errorf("ok, errors, by code = %d, %d, %v; want 40 in all, every error a 400", rep.OK, rep.Errors, rep.ErrorsByCode)
	}
	if !strings.Contains(rep.ErrorSamples["400"], "zero") {
		t.Errorf("error sample %q; want the division by zero", rep.ErrorSamples["400"])
	}
}

func TestRunNoDispatcher(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	srv := natsserver.RunServer(&opts)
	t.Cleanup(srv.Shutdown)
	rep, err := Run(context.Background(), Config{URL: srv.ClientURL(), Clients: 1, Concurrency: 1, Requests: 1, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Run = %v", err)
	}
	if rep.OK != 0 || rep.ErrorsByCode["503"] != 1 {
		t.Errorf("ok, errors by code = %d, %v; want 0 and one 503", rep.OK, rep.ErrorsByCode)
	}
}

func TestRunCancel(t *testing.T) {
	s := startSystem(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var once bool
	rep, err := Run(ctx, Config{
		URL: s.url, Concurrency: 4, Duration: time.Minute, ProgressEvery: 10 * time.Millisecond,
		Progress: func(p Progress) {
			if p.Done > 50 && !once {
				once = true
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v; want context.Canceled", err)
	}
	if rep == nil || rep.OK == 0 || rep.Errors != 0 {
		t.Fatalf("report %+v; want what was measured before the cancel, without errors", rep)
	}
}

func TestRunBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Clients: -1}, {Concurrency: -2}, {Rate: -1}, {Duration: -time.Second}, {MaxOutstanding: -1},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Run(%+v) = %v; want ErrConfig", cfg, err)
		}
	}
}

func TestReportText(t *testing.T) {
	s := startSystem(t, 2)
	rep, err := Run(context.Background(), Config{URL: s.url, Clients: 1, Concurrency: 2, Requests: 20, Mix: MustParseMix("add:1,mul:1")})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"closed loop: 2 outstanding", "20 ok, 0 errors", "throughput:", "p99.9", "tw-1", "tw-2"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
	j, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(j, &back); err != nil || back["ok"] != float64(20) {
		t.Errorf("JSON report %s; want ok 20", j)
	}
}

func TestProgressPrinter(t *testing.T) {
	var b bytes.Buffer
	p := &ProgressPrinter{W: &b, LineEvery: time.Hour}
	f := p.Func("run")
	f(Progress{Elapsed: time.Second, Duration: 4 * time.Second, Done: 100, Rate: 100})
	f(Progress{Elapsed: 2 * time.Second, Duration: 4 * time.Second, Done: 200, Rate: 100})
	f(Progress{Final: true})
	if got := strings.Count(b.String(), "\n"); got != 1 {
		t.Errorf("not a terminal: %d lines within LineEvery; want 1:\n%s", got, b.String())
	}
	if !strings.Contains(b.String(), "run:  25% 1.0s 100 replies") {
		t.Errorf("line = %q", b.String())
	}
	b.Reset()
	p = &ProgressPrinter{W: &b, TTY: true}
	f = p.Func("run")
	f(Progress{Elapsed: 2 * time.Second, Duration: 4 * time.Second, Done: 200, Rate: 100})
	f(Progress{Final: true})
	if !strings.Contains(b.String(), "\r") || !strings.Contains(b.String(), "████") || strings.Contains(b.String(), "\n") {
		t.Errorf("terminal output %q; want a bar redrawn in place", b.String())
	}
}

// Benchmarks for profiling the forwarding path in one process:
//
//	go test -run NONE -bench Forward -cpuprofile cpu.out ./bench/
//	go tool pprof -top -focus dispatcher bench.test cpu.out
func BenchmarkForward(b *testing.B) {
	for _, tc := range []struct{ name, subject string }{
		{"dispatcher", ""},
		{"direct", wire.Subjects{}.Direct()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := startSystem(b, 3)
			b.ReportAllocs()
			b.ResetTimer()
			rep, err := Run(context.Background(), Config{URL: s.url, Subject: tc.subject, Concurrency: 64, Requests: b.N})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(rep.Throughput, "req/s")
			b.ReportMetric(rep.Latency.P50*1000, "p50-µs")
		})
	}
}
