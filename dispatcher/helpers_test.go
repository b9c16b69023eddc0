package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// Test intervals: fast, but wide enough for a loaded 2-core machine
// running the race detector.
const (
	testHeartbeat = 100 * time.Millisecond
	testDeadAfter = time.Second
)

// testLogger shows the dispatcher's events with a failing test's output.
func testLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	// Registered first, so it runs last: a callback that outlives its
	// dispatcher's Shutdown must not log into a finished test.
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func startDispatcher(t testing.TB, url string, mod func(*dispatcher.Config)) *dispatcher.Dispatcher {
	t.Helper()
	cfg := dispatcher.Config{
		Conn: connect(t, url), ID: "d-test", Logger: testLogger(t),
		Heartbeat: testHeartbeat, DeadAfter: testDeadAfter,
		AttemptTimeout: 2 * time.Second, Tick: 2 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := dispatcher.New(cfg)
	if err != nil {
		t.Fatalf("dispatcher.New: %v", err)
	}
	if err := d.Start(); err != nil {
		t.Fatalf("dispatcher.Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return d
}

type testWorker struct {
	*calcworker.Worker
	nc *nats.Conn
}

func startWorker(t testing.TB, url, id string, mod func(*calcworker.Config)) testWorker {
	t.Helper()
	nc := connect(t, url)
	cfg := calcworker.Config{Conn: nc, ID: id, Heartbeat: testHeartbeat}
	if mod != nil {
		mod(&cfg)
	}
	w, err := calcworker.New(cfg)
	if err != nil {
		t.Fatalf("calcworker.New: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("worker.Start: %v", err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return testWorker{w, nc}
}

func newClient(t testing.TB, url string, mod func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{URL: url, Name: "test", Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := client.Connect(cfg)
	if err != nil {
		t.Fatalf("client.Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitState waits until each of the given workers is in its state at d.
func waitState(t testing.TB, d *dispatcher.Dispatcher, want map[string]string) {
	t.Helper()
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		got := map[string]string{}
		for _, w := range d.Status().Workers {
			got[w.ID] = w.State
		}
		for id, st := range want {
			if got[id] != st {
				return fmt.Errorf("workers = %v; want %v", got, want)
			}
		}
		return nil
	})
}

func up(ids ...string) map[string]string {
	m := map[string]string{}
	for _, id := range ids {
		m[id] = wire.StateUp
	}
	return m
}

// load sends n requests with at most c in flight and returns the errors.
func load(t testing.TB, cl *client.Client, n, c int, cmd func(i int) string, progress *atomic.Int64) []error {
	t.Helper()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, c)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := cl.Do(context.Background(), cmd(i))
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("request %d: %w", i, err))
				mu.Unlock()
			}
			if progress != nil {
				progress.Add(1)
			}
		}()
	}
	wg.Wait()
	return errs
}

func forwarded(d *dispatcher.Dispatcher, id string) uint64 {
	for _, w := range d.Status().Workers {
		if w.ID == id {
			return w.Forwarded
		}
	}
	return 0
}

// heartbeat publishes a heartbeat for a worker id that the test controls.
func heartbeat(t testing.TB, nc *nats.Conn, id string, seq uint64) {
	t.Helper()
	b, _ := json.Marshal(wire.Heartbeat{ID: id, Subject: "calc.worker." + id, State: wire.StateUp, Seq: seq, StartedAt: time.Unix(1, 0)})
	if err := nc.Publish("calc.heartbeat."+id, b); err != nil {
		t.Fatal(err)
	}
}
