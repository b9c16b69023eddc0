package loadcheck

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/wire"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func status(d string, workers ...string) wire.Status {
	st := wire.Status{Dispatcher: d}
	for _, w := range workers {
		id, state, _ := strings.Cut(w, "=")
		if state == "" {
			state = wire.StateUp
		}
		st.Workers = append(st.Workers, wire.WorkerStatus{ID: id, State: state})
	}
	return st
}

func TestWhole(t *testing.T) {
	v := View{Dispatchers: []string{"d1", "d2"}, Workers: []string{"w1", "w2"}}
	tests := []struct {
		name    string
		answers []answer
		whole   bool
		at      time.Time
		why     string
	}{
		{"whole", []answer{{at(3), status("d1", "w1", "w2")}, {at(5), status("d2", "w2", "w1", "w3=down")}}, true, at(5), ""},
		{"a dispatcher silent", []answer{{at(3), status("d1", "w1", "w2")}}, false, time.Time{}, "dispatcher d2 did not answer"},
		{"a worker draining", []answer{{at(3), status("d1", "w1", "w2")}, {at(4), status("d2", "w1", "w2=draining")}}, false, time.Time{}, "dispatcher d2 lists worker w2 draining"},
		{"a worker absent", []answer{{at(3), status("d1", "w1")}, {at(4), status("d2", "w1", "w2")}}, false, time.Time{}, "dispatcher d1 lists worker w2 absent"},
		{"nobody", nil, false, time.Time{}, "dispatcher d1 did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := whole(poll{sent: at(0), answers: tt.answers}, v)
			if why != tt.why || (tt.whole && !got.Equal(tt.at)) {
				t.Errorf("whole = %v, %q; want %v, %q", got, why, tt.at, tt.why)
			}
		})
	}
}

func TestDetection(t *testing.T) {
	v := View{Dispatchers: []string{"d1", "d2"}, Workers: []string{"w1", "w2"}}
	polls := []poll{
		{sent: at(0), answers: []answer{{at(2), status("d1", "w1", "w2")}, {at(3), status("d2", "w1", "w2")}}},
		{sent: at(100), answers: []answer{{at(102), status("d1", "w1", "w2")}, {at(103), status("d2", "w1", "w2")}}},
		{sent: at(200), answers: []answer{{at(202), status("d1", "w1", "w2=draining")}, {at(201), status("d2", "w1", "w2")}}},
		{sent: at(300), answers: []answer{{at(303), status("d2", "w1", "w2=down")}}},
		{sent: at(400), answers: []answer{{at(402), status("d1", "w1", "w2")}, {at(404), status("d2", "w1", "w2")}}},
	}
	tests := []struct {
		name string
		f    func() (time.Time, bool)
		want time.Time // zero: not found
	}{
		{"not whole from the start", func() (time.Time, bool) { return firstNotWhole(polls, v, at(0)) }, at(202)},
		{"not whole, a silent dispatcher", func() (time.Time, bool) { return firstNotWhole(polls, v, at(250)) }, at(300)},
		{"not whole, never", func() (time.Time, bool) { return firstNotWhole(polls, v, at(350)) }, time.Time{}},
		{"w2 left", func() (time.Time, bool) { return firstWorkerLeft(polls, "w2", at(50)) }, at(202)},
		{"w1 never left", func() (time.Time, bool) { return firstWorkerLeft(polls, "w1", at(0)) }, time.Time{}},
		{"whole from the start", func() (time.Time, bool) { return firstWhole(polls, v, at(0)) }, at(3)},
		{"whole again", func() (time.Time, bool) { return firstWhole(polls, v, at(150)) }, at(404)},
		{"whole, too late", func() (time.Time, bool) { return firstWhole(polls, v, at(401)) }, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.f()
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("got %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

func TestReportLine(t *testing.T) {
	r := &Report{Requests: 10, Columns: Columns{Fault: "worker-stop", Sent: 10, OK: 9, Lost: 1, P99: 12 * time.Millisecond,
		Detect: 80 * time.Millisecond, Detected: true}}
	want := "fault=worker-stop sent=10 ok=9 lost=1 wrong=0 dup=0 p99=12ms detect=80ms recover=none "
	if got := r.Line(); !strings.HasPrefix(got, want) {
		t.Errorf("Line() = %q; want it to start with %q", got, want)
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "1 requests lost") {
		t.Errorf("Err() = %v; want 1 requests lost", err)
	}
	r.Lost, r.OK = 0, 10
	if err := r.Err(); err != nil {
		t.Errorf("Err() = %v; want nil", err)
	}
	r.RejoinAsked = true
	if err := r.Err(); err == nil {
		t.Errorf("Err() = nil with no rejoin; want an error")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{URLs: []string{"nats://127.0.0.1:1"}, Detect: "sometimes"},
		{URLs: []string{"nats://127.0.0.1:1"}, Requests: 10, InjectAt: 11},
	} {
		if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("Run(%+v) = %v; want ErrConfig", cfg, err)
		}
	}
}

func TestSendRefusesABadPace(t *testing.T) {
	for _, p := range []Pace{{}, {Rate: 10}, {MaxOpen: 10}} {
		n, err := Send(context.Background(), nil, Draw(rand.New(rand.NewPCG(1, 2)), 3, 0, 0), p, nil)
		if n != 0 || !errors.Is(err, ErrConfig) {
			t.Errorf("Send with %+v = %d, %v; want 0, ErrConfig", p, n, err)
		}
	}
}

func TestDrawKnowsTheAnswers(t *testing.T) {
	recs := Draw(rand.New(rand.NewPCG(1, 2)), 50, 5, 20*time.Millisecond)
	for i, rc := range recs {
		if i%5 == 4 {
			if rc.Cmd != "sleep 20" || rc.Want != nil {
				t.Errorf("record %d = %q, want %q; a sleep's answer is the worker, not a value", i, rc.Cmd, "sleep 20")
			}
			continue
		}
		if rc.Want == nil || strings.HasPrefix(string(rc.Want), `"error:`) {
			t.Errorf("record %d: %q has no expected result (%s)", i, rc.Cmd, rc.Want)
		}
	}
}

// deployment is a broker, two dispatchers and three workers in this process,
// with 50 ms heartbeats.
type deployment struct {
	url     string
	workers map[string]*calcworker.Worker
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	const hb = 50 * time.Millisecond
	dep := &deployment{url: brokertest.Run(t).ClientURL(), workers: map[string]*calcworker.Worker{}}
	conn := func() *nats.Conn {
		nc, err := nats.Connect(dep.url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	stop := func(f func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f(ctx)
	}
	for _, id := range []string{"d1", "d2"} {
		d, err := dispatcher.New(dispatcher.Config{Conn: conn(), ID: id, Heartbeat: hb})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stop(d.Shutdown) })
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		w, err := calcworker.New(calcworker.Config{Conn: conn(), ID: id, Heartbeat: hb})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stop(w.Shutdown) })
		dep.workers[id] = w
	}
	return dep
}

func TestRunWorkerStop(t *testing.T) {
	dep := newDeployment(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		URLs:     []string{dep.url},
		Requests: 400, Rate: 1000, Clients: 2, PollEvery: 20 * time.Millisecond,
		Expect: View{Dispatchers: []string{"d1", "d2"}, Workers: []string{"w1", "w2", "w3"}},
		Fault:  "worker-stop", Detect: DetectWorkerPrefix + "w2",
		Inject: func(ctx context.Context) error { return dep.workers["w2"].Shutdown(ctx) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := rep.Err(); err != nil {
		t.Errorf("Err() = %v; failures %v", err, rep.Failures)
	}
	if rep.Sent != 400 || rep.OK != 400 {
		t.Errorf("sent %d, ok %d; want 400, 400", rep.Sent, rep.OK)
	}
	if !rep.Detected || rep.Detect > 2*time.Second {
		t.Errorf("detect = %v, %v; want the drain seen within 2s", rep.Detect, rep.Detected)
	}
	if !strings.HasPrefix(rep.Line(), "fault=worker-stop sent=400 ok=400 lost=0 wrong=0 dup=0 p99=") {
		t.Errorf("Line() = %q", rep.Line())
	}
}

func TestRunRejoin(t *testing.T) {
	dep := newDeployment(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// w3 leaves and never comes back: the run must say it did not recover.
	rep, err := Run(ctx, Config{
		URLs:     []string{dep.url},
		Requests: 200, Rate: 1000, PollEvery: 20 * time.Millisecond,
		Expect: View{Dispatchers: []string{"d1", "d2"}, Workers: []string{"w1", "w2", "w3"}},
		Fault:  "worker-gone", Rejoin: true, RejoinWait: 500 * time.Millisecond,
		Inject: func(ctx context.Context) error { return dep.workers["w3"].Shutdown(ctx) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Recovered || rep.Err() == nil {
		t.Errorf("recovered = %v, Err() = %v; want no recovery and an error", rep.Recovered, rep.Err())
	}
	if rep.Lost != 0 {
		t.Errorf("lost = %d; want 0 (%v)", rep.Lost, rep.Failures)
	}
}

func TestRunNotWhole(t *testing.T) {
	dep := newDeployment(t)
	_, err := Run(context.Background(), Config{
		URLs:      []string{dep.url},
		Expect:    View{Dispatchers: []string{"d1", "d9"}},
		WaitWhole: 300 * time.Millisecond,
	})
	if !errors.Is(err, ErrNotWhole) || !strings.Contains(err.Error(), "d9 did not answer") {
		t.Errorf("Run = %v; want ErrNotWhole naming d9", err)
	}
}

func TestDial(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var opened []*nats.Conn
	dial := func(name string, i int) (*nats.Conn, error) {
		if i == 2 {
			return nil, errors.New("no third connection")
		}
		nc, err := nats.Connect(url, nats.Name(name))
		if err == nil {
			opened = append(opened, nc)
		}
		return nc, err
	}

	cs, err := Dial(2, "lc", dial, client.Config{})
	if err != nil {
		t.Fatalf("Dial(2) = %v", err)
	}
	if len(cs.List) != 2 || opened[0].Opts.Name != "lc-c0" || opened[1].Opts.Name != "lc-c1" {
		t.Errorf("Dial(2) opened %d clients on %q, %q; want 2 on lc-c0, lc-c1", len(cs.List), opened[0].Opts.Name, opened[1].Opts.Name)
	}
	cs.Close()
	if !opened[0].IsClosed() || !opened[1].IsClosed() {
		t.Errorf("Close left a connection open")
	}

	opened = nil
	if _, err := Dial(3, "lc", dial, client.Config{}); err == nil || err.Error() != "no third connection" {
		t.Errorf("Dial(3) = %v; want dial's own error", err)
	}
	if len(opened) != 2 || !opened[0].IsClosed() || !opened[1].IsClosed() {
		t.Errorf("a failed Dial left its first connections open")
	}
}
