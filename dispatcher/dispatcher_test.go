package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// waitWorkers waits until d has exactly the given workers in a state.
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

func TestRoundRobinExactOrder(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		startWorker(t, url, id, nil)
	}
	waitState(t, d, up("w-a", "w-b", "w-c"))
	c := newClient(t, url, nil)
	var order []string
	for i := range 30 {
		r, err := c.Do(context.Background(), fmt.Sprintf("add %d 1", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := r.ResultString(); got != fmt.Sprint(i+1) {
			t.Fatalf("add %d 1 = %s; want %d", i, got, i+1)
		}
		order = append(order, r.Worker)
	}
	// A stable cycle: every window of 3 holds 3 different workers, and
	// request i+3 goes where request i went.
	for i := range order {
		if i+3 < len(order) && order[i] != order[i+3] {
			t.Fatalf("order = %v; not a cycle of 3", order)
		}
		if i+2 < len(order) && (order[i] == order[i+1] || order[i] == order[i+2] || order[i+1] == order[i+2]) {
			t.Fatalf("order = %v; 3 consecutive requests should reach 3 workers", order)
		}
	}
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

func TestWorkerConnectionClosedMidLoad(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.AttemptTimeout = 500 * time.Millisecond })
	var ws []testWorker
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		ws = append(ws, startWorker(t, url, id, nil))
	}
	waitState(t, d, up("w-a", "w-b", "w-c"))
	cl := newClient(t, url, nil)

	var done atomic.Int64
	go func() {
		for done.Load() < 100 {
			time.Sleep(time.Millisecond)
		}
		ws[1].nc.Close() // abrupt: no draining heartbeat, replies in flight lost
	}()
	errs := load(t, cl, 600, 16, func(i int) string { return fmt.Sprintf("mul %d 2", i) }, &done)
	if len(errs) > 0 {
		t.Fatalf("%d of 600 requests failed; first: %v", len(errs), errs[0])
	}
	waitState(t, d, map[string]string{"w-b": wire.StateDown})
	st := d.Stats()
	if st.Failed != 0 {
		t.Fatalf("dispatcher failed %d requests; want 0", st.Failed)
	}
}

func TestDrainingWorkerLeavesRotation(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	var ws []testWorker
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		ws = append(ws, startWorker(t, url, id, nil))
	}
	waitState(t, d, up("w-a", "w-b", "w-c"))
	cl := newClient(t, url, nil)

	var done atomic.Int64
	drained := make(chan error, 1)
	go func() {
		for done.Load() < 100 {
			time.Sleep(time.Millisecond)
		}
		drained <- ws[0].Shutdown(context.Background())
	}()
	errs := load(t, cl, 500, 16, func(i int) string { return fmt.Sprintf("sleep %d", i%3) }, &done)
	if len(errs) > 0 {
		t.Fatalf("%d of 500 requests failed while a worker drained; first: %v", len(errs), errs[0])
	}
	if err := <-drained; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// It said draining, then went silent: draining, or down once silent.
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, w := range d.Status().Workers {
			if w.ID == "w-a" && w.State != wire.StateDraining && !(w.State == wire.StateDown && w.Reason == "left after draining") {
				return fmt.Errorf("drained worker is %s (%s); want draining, or down after draining", w.State, w.Reason)
			}
		}
		return nil
	})
	// No new request reaches it.
	before := forwarded(d, "w-a")
	if errs := load(t, cl, 30, 4, func(i int) string { return "add 1 1" }, nil); len(errs) > 0 {
		t.Fatalf("after drain: %v", errs[0])
	}
	if after := forwarded(d, "w-a"); after != before {
		t.Fatalf("drained worker got %d forwards after it left", after-before)
	}
}

func forwarded(d *dispatcher.Dispatcher, id string) uint64 {
	for _, w := range d.Status().Workers {
		if w.ID == id {
			return w.Forwarded
		}
	}
	return 0
}

// heartbeater publishes heartbeats for a worker id that the test controls.
func heartbeat(t testing.TB, nc *nats.Conn, id string, seq uint64) {
	t.Helper()
	b, _ := json.Marshal(wire.Heartbeat{ID: id, Subject: "calc.worker." + id, State: wire.StateUp, Seq: seq, StartedAt: time.Unix(1, 0)})
	if err := nc.Publish("calc.heartbeat."+id, b); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatExpiryAndReturn(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	nc := connect(t, url)
	heartbeat(t, nc, "w-silent", 1)
	waitState(t, d, up("w-silent"))
	// No more heartbeats: down after DeadAfter, with the reason.
	waitState(t, d, map[string]string{"w-silent": wire.StateDown})
	for _, w := range d.Status().Workers {
		if w.ID == "w-silent" && w.Reason == "" {
			t.Fatalf("down without a reason")
		}
	}
	heartbeat(t, nc, "w-silent", 2)
	waitState(t, d, up("w-silent"))
}

func TestNoLiveWorkerAnswers503(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	startDispatcher(t, url, nil)
	cl := newClient(t, url, nil)
	_, err := cl.Do(context.Background(), "add 1 2")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("Do with no worker = %v; want a 503 (a 504 would mean it hung)", err)
	}
}

func TestInflightCapAnswers503(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.MaxInflight = 2 })
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	cl := newClient(t, url, func(c *client.Config) { c.MaxAttempts = 1 })

	// Two slow requests fill the cap; hold them until the third is refused.
	results := make(chan error, 2)
	for range 2 {
		go func() { _, err := cl.Do(context.Background(), "sleep 2000"); results <- err }()
	}
	testutil.CheckFor(t, 5*time.Second, 2*time.Millisecond, func() error {
		if n := d.Stats().Inflight; n != 2 {
			return fmt.Errorf("in flight = %d; want 2", n)
		}
		return nil
	})
	_, err := cl.Do(context.Background(), "add 1 2")
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeUnavailable {
		t.Fatalf("request over the cap = %v; want 503", err)
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("request under the cap: %v", err)
		}
	}
}

func TestSilentWorkerIsRetriedElsewhere(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.AttemptTimeout = 100 * time.Millisecond
		c.Outlier = dispatcher.OutlierConfig{Consecutive: 3, BaseEjection: time.Minute}
	})
	startWorker(t, url, "w-a", nil)
	startWorker(t, url, "w-b", nil)
	startWorker(t, url, "w-slow", func(c *calcworker.Config) { c.Env = calc.Env{Delay: 2 * time.Second} })
	waitState(t, d, up("w-a", "w-b", "w-slow"))
	cl := newClient(t, url, nil)
	for i := range 12 {
		r, err := cl.Do(context.Background(), fmt.Sprintf("add %d 0", i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r.Worker == "w-slow" {
			t.Fatalf("request %d answered by the slow worker", i)
		}
	}
	// Three timeouts in a row eject it; the others are 2 of 3, so it may go.
	waitState(t, d, map[string]string{"w-slow": wire.StateEjected})
}

func TestStatusOverNATS(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	cl := newClient(t, url, nil)
	st, err := cl.Status(context.Background(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Dispatcher != "d-test" || len(st[0].Workers) != 1 || st[0].Workers[0].ID != "w-a" {
		t.Fatalf("status = %+v; want d-test with w-a", st)
	}
}

func TestShutdownIdempotent(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.LogRequests = true })
	w := startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(2)
		go func() { defer wg.Done(); _ = d.Shutdown(context.Background()) }()
		go func() { defer wg.Done(); _ = w.Shutdown(context.Background()) }()
	}
	wg.Wait()
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown again: %v", err)
	}
}

// TestSilentButServingWorkerIsTriedWhenNoneIsLive covers a stall that
// silences every heartbeat: a worker marked down for silence alone still
// gets requests while no worker is live, instead of every request failing.
func TestSilentButServingWorkerIsTriedWhenNoneIsLive(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	// One heartbeat at start, then none for an hour.
	startWorker(t, url, "w-quiet", func(c *calcworker.Config) { c.Heartbeat = time.Hour })
	waitState(t, d, map[string]string{"w-quiet": wire.StateDown})
	cl := newClient(t, url, nil)
	r, err := cl.Do(context.Background(), "add 40 2")
	if err != nil || r.ResultString() != "42" || r.Worker != "w-quiet" {
		t.Fatalf("Do = %+v, %v; want 42 from w-quiet", r, err)
	}
}

// TestBadInputGetsClearErrors sends what a careless or hostile client
// might, through the dispatcher: each gets an error reply with the right
// code and a message, and nothing else changes.
func TestBadInputGetsClearErrors(t *testing.T) {
	srv := brokertest.Run(t)
	url := srv.ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-a", nil)
	startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	nc := connect(t, url)
	// Room for the headers nats.go and the dispatcher add, up to the
	// broker's limit.
	maxData := int(nc.MaxPayload()) - 512
	tests := []struct {
		name    string
		payload []byte
		code    int
	}{
		{"unknown op", []byte("frobnicate 1 2"), 400},
		{"wrong arity", []byte("sub 1"), 400},
		{"not a number", []byte("add 1 x"), 400},
		{"NaN", []byte("add NaN 1"), 400},
		{"Inf in JSON", []byte(`{"op":"add","args":["Inf",1]}`), 400},
		{"division by zero", []byte("div 1 0"), 400},
		{"out of bounds", []byte("fact 100000"), 400},
		{"malformed JSON", []byte(`{"op":"add","args":[1,`), 400},
		{"not UTF-8", []byte("add \xff\xfe 1"), 400},
		{"empty", []byte(""), 400},
		{"at the broker's max size", append([]byte("add 1 "), make([]byte, maxData)...), 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := nc.Request("calc.request", tt.payload, 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			e := wire.ErrorFromMsg(r)
			if e == nil || e.Code != tt.code || e.Message == "" {
				t.Fatalf("reply = %v (%q); want code %d with a message", e, r.Data, tt.code)
			}
			var body wire.Reply
			if err := json.Unmarshal(r.Data, &body); err != nil || body.Error == nil || body.Error.Code != tt.code {
				t.Fatalf("body = %q; want the same error in JSON", r.Data)
			}
		})
	}
	// Nothing else changed: both workers up, no ejection, service works.
	for _, w := range d.Status().Workers {
		if w.State != wire.StateUp || w.Ejections != 0 {
			t.Fatalf("after bad input: %s is %s (ejections %d)", w.ID, w.State, w.Ejections)
		}
	}
	if r, err := nc.Request("calc.request", []byte("add 2 3"), 5*time.Second); err != nil || wire.ErrorFromMsg(r) != nil {
		t.Fatalf("good request after bad ones: %v %v", err, r)
	}
}

// TestRetryBudgetBoundsHedges sends a burst at a slow worker with a tiny
// retry budget: only the allowance of hedges goes out at once, the rest
// wait for their first attempt, and every request still succeeds.
func TestRetryBudgetBoundsHedges(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) {
		c.AttemptTimeout = 50 * time.Millisecond
		c.RetryBudget = 0.01 // of 20 in flight: 0, so MinRetries rules
		c.MinRetries = 1
		c.Outlier = dispatcher.OutlierConfig{Consecutive: -1}
	})
	startWorker(t, url, "w-fast", nil)
	startWorker(t, url, "w-slow", func(c *calcworker.Config) {
		c.Env = calc.Env{Delay: 500 * time.Millisecond}
		c.Concurrency = 64
	})
	waitState(t, d, up("w-fast", "w-slow"))
	cl := newClient(t, url, func(c *client.Config) { c.MaxAttempts = 1 })
	if errs := load(t, cl, 20, 20, func(i int) string { return fmt.Sprintf("add %d 1", i) }, nil); len(errs) > 0 {
		t.Fatalf("%d requests failed; first: %v", len(errs), errs[0])
	}
	st := d.Stats()
	if st.Retries == 0 || st.RetriesDenied == 0 {
		t.Fatalf("stats = %+v; want some hedges sent and some denied by the budget", st)
	}
}

// TestSameIDTwiceOnOneWorker: two requests with one id, pending on the
// same worker at once (a client resending, or two clients reusing an id),
// each get their own answer: the second cannot share the worker's reply
// subject, keyed by request id, and gets one of its own.
func TestSameIDTwiceOnOneWorker(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-slow", func(c *calcworker.Config) { c.Env.Delay = 300 * time.Millisecond })
	waitState(t, d, up("w-slow"))
	nc := connect(t, url)
	send := func(cmd string) *nats.Msg {
		m := nats.NewMsg(wire.Subjects{}.Request())
		m.Header.Set(wire.HdrRequestID, "same-id")
		m.Data = []byte(cmd)
		return m
	}
	results := make([]string, 2)
	var wg sync.WaitGroup
	for i, cmd := range []string{"add 1 1", "add 2 2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := nc.RequestMsg(send(cmd), 5*time.Second)
			if err != nil {
				results[i] = err.Error()
				return
			}
			var rep wire.Reply
			if err := json.Unmarshal(r.Data, &rep); err != nil {
				results[i] = err.Error()
				return
			}
			results[i] = string(rep.Result)
		}()
	}
	wg.Wait()
	if results[0] != "2" || results[1] != "4" {
		t.Fatalf("results = %q; want 2 and 4, each its own", results)
	}
}

// TestNoRespondersOnAWorkersSubject: a worker that heartbeats but has no
// subscription makes the broker answer "no responders" on its reply
// subject, which carries no request id. The dispatcher takes it out and
// sends the request on at once: with an attempt timeout far beyond the
// client's deadline, a request left waiting on it would fail.
func TestNoRespondersOnAWorkersSubject(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.AttemptTimeout = time.Minute })
	startWorker(t, url, "w-real", nil)
	ghost := connect(t, url)
	beat := func() {
		b, _ := json.Marshal(wire.Heartbeat{ID: "w-ghost", Subject: wire.Subjects{}.Worker("w-ghost"),
			State: wire.StateUp, IntervalMS: testHeartbeat.Milliseconds(), StartedAt: time.Now()})
		if err := ghost.Publish(wire.Subjects{}.Heartbeat("w-ghost"), b); err != nil {
			t.Error(err)
		}
	}
	beat()
	waitState(t, d, up("w-real", "w-ghost"))
	cl := newClient(t, url, func(c *client.Config) { c.Timeout = 3 * time.Second; c.MaxAttempts = 1 })
	for i := range 20 {
		beat() // back in rotation, if it was taken out
		if _, err := cl.Do(context.Background(), fmt.Sprintf("add %d 1", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if st := d.Stats(); st.Failed != 0 {
		t.Fatalf("dispatcher failed %d requests; want 0", st.Failed)
	}
}

// TestBadHeartbeatsChangeNothing: heartbeats whose worker id could not be a
// subject token (ids name the worker's subjects) or that are not JSON are
// logged and dropped; a good one sent after them on the same connection
// shows they were handled.
func TestBadHeartbeatsChangeNothing(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	nc := connect(t, url)
	beat := func(id string) {
		b, _ := json.Marshal(wire.Heartbeat{ID: id, State: wire.StateUp, IntervalMS: 100, StartedAt: time.Now()})
		if err := nc.Publish(wire.Subjects{}.Heartbeat("x"), b); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"", "a.b", "t.5", "x y", "w-*", "w->", strings.Repeat("w", 65), "w-\u00e8"} {
		beat(id)
	}
	for _, raw := range []string{"", "{", "null", `{"id":5}`, "\xff"} {
		if err := nc.Publish(wire.Subjects{}.Heartbeat("x"), []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	beat("w-ok")
	waitState(t, d, up("w-ok"))
	if ws := d.Status().Workers; len(ws) != 1 {
		t.Fatalf("workers = %+v; want only w-ok", ws)
	}
}

// TestForwardKeepsTheClientsHeaders: a worker gets the headers the client
// sent, whether they are just the three a client sets (which the
// dispatcher re-encodes from pooled maps) or more; a request without any
// gets a generated id.
func TestForwardKeepsTheClientsHeaders(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	// A worker of our own that answers with the headers it got.
	wc := connect(t, url)
	subj := wire.Subjects{}.Worker("w-echo")
	if _, err := wc.Subscribe(subj, func(m *nats.Msg) {
		b, _ := json.Marshal(m.Header)
		out := nats.NewMsg(m.Reply)
		out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		out.Data = b
		_ = m.RespondMsg(out)
	}); err != nil {
		t.Fatal(err)
	}
	hb, _ := json.Marshal(wire.Heartbeat{ID: "w-echo", Subject: subj, State: wire.StateUp, IntervalMS: 100, StartedAt: time.Now()})
	if err := wc.Publish(wire.Subjects{}.Heartbeat("w-echo"), hb); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, up("w-echo"))

	nc := connect(t, url)
	ask := func(h nats.Header) nats.Header {
		t.Helper()
		m := &nats.Msg{Subject: wire.Subjects{}.Request(), Header: h, Data: []byte("add 1 2")}
		r, err := nc.RequestMsg(m, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var got nats.Header
		if err := json.Unmarshal(r.Data, &got); err != nil {
			t.Fatalf("%s: %v", r.Data, err)
		}
		return got
	}
	ours := nats.Header{wire.HdrRequestID: {"id-1"}, wire.HdrClient: {"alice"}, wire.HdrTimeout: {"3000"}}
	for range 3 { // the pooled maps are reused: nothing may leak from one to the next
		if got := ask(ours); fmt.Sprint(got) != fmt.Sprint(ours) {
			t.Fatalf("worker got %v; want %v", got, ours)
		}
	}
	idOnly := nats.Header{wire.HdrRequestID: {"id-2"}}
	if got := ask(idOnly); fmt.Sprint(got) != fmt.Sprint(idOnly) {
		t.Fatalf("worker got %v; want %v", got, idOnly)
	}
	more := nats.Header{wire.HdrRequestID: {"id-3"}, "Traceparent": {"00-abc-def-01"}, wire.HdrClient: {"a", "b"}}
	if got := ask(more); fmt.Sprint(got) != fmt.Sprint(more) {
		t.Fatalf("worker got %v; want %v", got, more)
	}
	if got := ask(nil); len(got) != 1 || got.Get(wire.HdrRequestID) == "" {
		t.Fatalf("worker got %v; want a generated %s alone", got, wire.HdrRequestID)
	}
}

// TestHeartbeatsOnAPacedConnection: with heartbeats on a connection of
// their own, read in batches, workers still come up, serve, and go down
// when they fall silent.
func TestHeartbeatsOnAPacedConnection(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	hb, err := nats.Connect(url, nats.SetCustomDialer(dispatcher.PacedDialer{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hb.Close)
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.HeartbeatConn = hb })
	startWorker(t, url, "w-a", nil)
	b := startWorker(t, url, "w-b", nil)
	waitState(t, d, up("w-a", "w-b"))
	cl := newClient(t, url, nil)
	for i := range 10 {
		if _, err := cl.Do(context.Background(), fmt.Sprintf("add %d 1", i)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if hb.Stats().InMsgs == 0 {
		t.Fatal("no heartbeat came in on the heartbeat connection")
	}
	b.nc.Close() // silent from now on
	waitState(t, d, map[string]string{"w-a": wire.StateUp, "w-b": wire.StateDown})
}

// A dispatcher on a subject of its own serves there, beside one on the
// usual subject, on the same workers; each answers only its own clients.
func TestDispatcherOnItsOwnSubject(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	usual := startDispatcher(t, url, nil)
	other := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID, c.Subject = "d-other", "calc.canary" })
	startWorker(t, url, "w-a", nil)
	waitState(t, usual, up("w-a"))
	waitState(t, other, up("w-a"))
	for subj, want := range map[string]string{"calc.request": "d-test", "calc.canary": "d-other"} {
		cl := newClient(t, url, func(c *client.Config) { c.Subject = subj })
		for range 4 {
			res, err := cl.Do(context.Background(), "add 2 3")
			if err != nil || res.Dispatcher != want || res.ResultString() != "5" {
				t.Fatalf("on %s: %+v, %v; want 5 from %s", subj, res, err, want)
			}
		}
	}
	st := other.Status()
	if st.Subject != "calc.canary" || st.Served != 4 {
		t.Errorf("status subject %q, served %d; want calc.canary, 4", st.Subject, st.Served)
	}
	for _, bad := range []string{"calc.>", "calc.*.x", "calc..x", ".calc", "calc request", ""} {
		nc := connect(t, url)
		_, err := dispatcher.New(dispatcher.Config{Conn: nc, Subject: bad})
		if (err == nil) != (bad == "") {
			t.Errorf("New with subject %q: %v", bad, err)
		}
	}
}
