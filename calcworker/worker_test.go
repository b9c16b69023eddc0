package calcworker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func start(t testing.TB, url string, cfg calcworker.Config) *calcworker.Worker {
	t.Helper()
	cfg.Conn = connect(t, url)
	w, err := calcworker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return w
}

// startSims starts n workers sim-0 to sim-<n-1> on one connection and
// pool, heartbeating seldom; the test shuts them down.
func startSims(t testing.TB, nc *nats.Conn, shared *calcworker.Shared, n int) []*calcworker.Worker {
	t.Helper()
	var workers []*calcworker.Worker
	for i := range n {
		w, err := calcworker.New(calcworker.Config{Conn: nc, ID: fmt.Sprintf("sim-%d", i), Shared: shared, Heartbeat: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
	}
	return workers
}

func request(t testing.TB, nc *nats.Conn, subj, cmd string) *nats.Msg {
	t.Helper()
	m := nats.NewMsg(subj)
	m.Header.Set(wire.HdrRequestID, "req-1")
	m.Data = []byte(cmd)
	r, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatalf("request %q: %v", cmd, err)
	}
	return r
}

func TestRepliesAndErrors(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	w := start(t, url, calcworker.Config{ID: "w-a"})
	nc := connect(t, url)
	tests := []struct {
		cmd, result string
		code        int
	}{
		{"add 2 3", "5", 0},
		{`{"op":"mul","args":[4,5]}`, "20", 0},
		{"fact 25", `"15511210043330985984000000"`, 0},
		{"div 1 0", "", 400},
		{"nope 1", "", 400},
		{"", "", 400},
		{"\xff\xfe", "", 400},
	}
	for _, tt := range tests {
		r := request(t, nc, w.Subject(), tt.cmd)
		if got := r.Header.Get(wire.HdrWorker); got != "w-a" {
			t.Errorf("%q: Calc-Worker = %q; want w-a", tt.cmd, got)
		}
		var rep wire.Reply
		if err := json.Unmarshal(r.Data, &rep); err != nil {
			t.Fatalf("%q: reply %q is not JSON: %v", tt.cmd, r.Data, err)
		}
		if rep.ID != "req-1" || rep.Worker != "w-a" {
			t.Errorf("%q: reply id/worker = %q/%q; want req-1/w-a", tt.cmd, rep.ID, rep.Worker)
		}
		if tt.code != 0 {
			if e := wire.ErrorFromMsg(r); e == nil || e.Code != tt.code || e.Message == "" || rep.Error == nil || rep.Error.Code != tt.code {
				t.Errorf("%q: error = %v, body %s; want code %d in headers and body", tt.cmd, e, r.Data, tt.code)
			}
			continue
		}
		if string(rep.Result) != tt.result {
			t.Errorf("%q: result = %s; want %s", tt.cmd, rep.Result, tt.result)
		}
	}
	if st := w.Stats(); st.Served != uint64(len(tests)) || st.Errors != 4 {
		t.Errorf("stats = %+v; want %d served, 4 errors", st, len(tests))
	}
}

func TestHeartbeatsWhileSpinning(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	hbs := make(chan wire.Heartbeat, 100)
	sub, err := nc.Subscribe("calc.heartbeat.w-busy", func(m *nats.Msg) {
		var hb wire.Heartbeat
		if json.Unmarshal(m.Data, &hb) == nil {
			select {
			case hbs <- hb:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = nc.Flush()
	w := start(t, url, calcworker.Config{ID: "w-busy", Heartbeat: 20 * time.Millisecond, Concurrency: 4})
	// Every compute slot busy burning CPU for a second.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); request(t, nc, w.Subject(), "spin 1000") }()
	}
	// Heartbeats keep coming, reporting the work in flight.
	deadline := time.After(10 * time.Second)
	for busy := 0; busy < 3; {
		select {
		case hb := <-hbs:
			if hb.Inflight == 4 {
				busy++
			}
			if hb.ID != "w-busy" || hb.Subject != "calc.worker.w-busy" || hb.State != wire.StateUp || hb.Version == "" || hb.IntervalMS != 20 {
				t.Fatalf("heartbeat = %+v", hb)
			}
		case <-deadline:
			t.Fatal("no heartbeats while the worker was busy")
		}
	}
	wg.Wait()
}

func TestDrainFinishesInflight(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	states := make(chan string, 100)
	sub, _ := nc.Subscribe("calc.heartbeat.w-d", func(m *nats.Msg) {
		var hb wire.Heartbeat
		_ = json.Unmarshal(m.Data, &hb)
		states <- hb.State
	})
	defer sub.Unsubscribe()
	_ = nc.Flush()
	w := start(t, url, calcworker.Config{ID: "w-d", Heartbeat: time.Hour})
	<-states // the first heartbeat, at start

	const n = 8
	replies := make(chan *nats.Msg, n)
	for i := range n {
		go func() { replies <- request(t, nc, w.Subject(), fmt.Sprintf("sleep %d", 100+i)) }()
	}
	for w.Stats().Inflight < n {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for range 3 { // concurrent and repeated Shutdown
		wg.Add(1)
		go func() { defer wg.Done(); _ = w.Shutdown(context.Background()) }()
	}
	wg.Wait()
	if s := <-states; s != wire.StateDraining {
		t.Fatalf("heartbeat on shutdown = %q; want draining", s)
	}
	for range n {
		if r := <-replies; wire.ErrorFromMsg(r) != nil {
			t.Fatalf("in-flight request failed during drain: %s", r.Data)
		}
	}
	// Gone: a request now gets "no responders".
	if _, err := nc.Request(w.Subject(), []byte("add 1 1"), time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request after drain = %v; want no responders", err)
	}
}

func TestShutdownDeadlineCancelsWork(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	w := start(t, url, calcworker.Config{ID: "w-c"})
	reply := make(chan *nats.Msg, 1)
	go func() { reply <- request(t, nc, w.Subject(), "sleep 20000") }()
	for w.Stats().Inflight < 1 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := w.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown past its deadline returned nil")
	}
	if e := wire.ErrorFromMsg(<-reply); e == nil {
		t.Fatal("a cancelled computation replied success")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := calcworker.New(calcworker.Config{}); err == nil {
		t.Error("New without Conn: nil error")
	}
	url := brokertest.Run(t).ClientURL()
	for _, id := range []string{"a.b", "a b", "*", ">", "é"} {
		if _, err := calcworker.New(calcworker.Config{Conn: connect(t, url), ID: id}); err == nil {
			t.Errorf("New with id %q: nil error", id)
		}
	}
}

// TestDrainGraceKeepsServing: after its draining heartbeat, a worker with
// a grace still answers what reaches it, for dispatchers that hear the
// announcement late.
func TestDrainGraceKeepsServing(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	draining := make(chan struct{}, 1)
	if _, err := nc.Subscribe(wire.Subjects{}.Heartbeat("w-g"), func(m *nats.Msg) {
		var hb wire.Heartbeat
		if json.Unmarshal(m.Data, &hb) == nil && hb.State == wire.StateDraining {
			select {
			case draining <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	w := start(t, url, calcworker.Config{ID: "w-g", DrainGrace: time.Second})
	done := make(chan error, 1)
	go func() { done <- w.Shutdown(context.Background()) }()
	select {
	case <-draining:
	case <-time.After(10 * time.Second):
		t.Fatal("no draining heartbeat")
	}
	r := request(t, nc, wire.Subjects{}.Worker("w-g"), "add 2 3")
	var rep wire.Reply
	if err := json.Unmarshal(r.Data, &rep); err != nil || string(rep.Result) != "5" {
		t.Fatalf("reply during the grace: %s (%v)", r.Data, err)
	}
	if err := <-done; err != nil { // after the grace, it drains and stops
		t.Fatalf("Shutdown: %v", err)
	}
}

// Workers sharing one connection, channel and pool each answer on their
// own subject, as themselves; they heartbeat and introduce themselves on
// discover; one that shuts down leaves the others serving.
func TestSharedWorkers(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	wnc := connect(t, url)
	shared := calcworker.NewShared(2, 0)
	const n = 20
	workers := startSims(t, wnc, shared, n)
	nc := connect(t, url)
	hbs, err := nc.SubscribeSync("calc.heartbeat.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("calc.discover", nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m, err := hbs.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("heartbeats after discover from %d of %d workers: %v", len(seen), n, err)
		}
		hb, err := wire.DecodeHeartbeat(m.Data)
		if err != nil || hb.State != wire.StateUp || hb.Concurrency != 2 {
			t.Fatalf("heartbeat %s: %+v, %v", m.Data, hb, err)
		}
		seen[hb.ID] = true
	}
	for range 3 {
		for _, w := range workers {
			r := request(t, nc, w.Subject(), "add 2 3")
			var rep wire.Reply
			if err := json.Unmarshal(r.Data, &rep); err != nil || string(rep.Result) != "5" ||
				r.Header.Get(wire.HdrWorker) != w.ID() {
				t.Fatalf("%s answered %q from %q (%v)", w.ID(), r.Data, r.Header.Get(wire.HdrWorker), err)
			}
		}
	}
	if err := workers[0].Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request(workers[0].Subject(), []byte("add 1 1"), 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("request to a worker shut down: %v; want no responders", err)
	}
	if r := request(t, nc, workers[1].Subject(), "add 1 1"); r.Header.Get(wire.HdrWorker) != workers[1].ID() {
		t.Errorf("after another's shutdown %s answered as %q", workers[1].ID(), r.Header.Get(wire.HdrWorker))
	}
	for _, w := range workers {
		if err := w.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if st := w.Stats(); w != workers[0] && st.Served < 3 {
			t.Errorf("%s served %d; want at least 3", w.ID(), st.Served)
		}
	}
	wnc.Close()
	shared.Close()
}

// TestProgressCancelAndDeadline: requests that ask for progress are
// reported while they run and while they wait for a compute slot, in one
// message per reply subject; a cancel stops one without a reply; the
// deadline counts from arrival; a request that did not ask gets its reply
// alone.
func TestProgressCancelAndDeadline(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	w := start(t, url, calcworker.Config{ID: "w-p", Concurrency: 1, Progress: 20 * time.Millisecond})
	if hb := w.Heartbeat(); hb.ProgressMS != 20 {
		t.Fatalf("heartbeat progress_ms = %d; want 20", hb.ProgressMS)
	}
	nc := connect(t, url)
	inbox := nats.NewInbox()
	msgs, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	send := func(id, cmd string, progress bool, timeoutMS string) {
		t.Helper()
		m := nats.NewMsg(w.Subject())
		m.Reply = inbox
		m.Header.Set(wire.HdrRequestID, id)
		if progress {
			m.Header.Set(wire.HdrProgress, "1")
		}
		if timeoutMS != "" {
			m.Header.Set(wire.HdrTimeout, timeoutMS)
		}
		m.Data = []byte(cmd)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	// a runs, b waits for the one compute slot: both are reported.
	send("a", "sleep 5000", true, "")
	send("b", "sleep 10", true, "")
	for {
		m, err := msgs.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no progress message naming a and b: %v", err)
		}
		if len(m.Data) != 0 || m.Header.Get(wire.HdrProgress) != "1" || m.Header.Get(wire.HdrWorker) != "w-p" {
			t.Fatalf("before any reply: %v %q; want progress messages", m.Header, m.Data)
		}
		if ids := m.Header[wire.HdrRequestID]; len(ids) == 2 {
			break
		}
	}
	cancel := nats.NewMsg(w.Subject())
	cancel.Header.Set(wire.HdrCancel, "a")
	if err := nc.PublishMsg(cancel); err != nil {
		t.Fatal(err)
	}
	// b's reply comes, a's never does.
	for {
		m, err := msgs.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("no reply to b after a was cancelled: %v", err)
		}
		if len(m.Data) == 0 {
			continue // progress
		}
		if id := m.Header.Get(wire.HdrRequestID); id != "b" {
			t.Fatalf("reply to %q (%s); want b's alone", id, m.Data)
		}
		break
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if st := w.Stats(); st.Served != 1 || st.Inflight != 0 {
			return fmt.Errorf("stats = %+v; want 1 served (b), nothing in flight", st)
		}
		return nil
	})

	// A deadline of 100ms, counted from arrival, ends a long sleep; a
	// request without Calc-Progress hears nothing before its reply.
	start := time.Now()
	send("c", "sleep 5000", false, "100")
	m, err := msgs.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := wire.ErrorFromMsg(m); e == nil || e.Code != wire.CodeDeadline || m.Header.Get(wire.HdrRequestID) != "c" {
		t.Fatalf("reply %v %s; want c's 504", m.Header, m.Data)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("504 after %v; want about 100ms", el)
	}
}
