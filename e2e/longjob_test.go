package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// wireLog watches a deployment's subjects: every forward to a worker (its
// time, by request id) and every progress message a worker sends (the
// last, by worker and request id).
type wireLog struct {
	mu       sync.Mutex
	forwards map[string][]forward
	progress map[[2]string][]time.Time // worker, request id
}

type forward struct {
	worker string
	at     time.Time
}

func watchWire(t *testing.T, url string) *wireLog {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	wl := &wireLog{forwards: map[string][]forward{}, progress: map[[2]string][]time.Time{}}
	workers := wire.Subjects{}.Worker("")
	if _, err := nc.Subscribe(workers+"*", func(m *nats.Msg) {
		if m.Reply == "" || m.Header == nil { // a cancel, or not a forward
			return
		}
		wl.mu.Lock()
		id := m.Header.Get(wire.HdrRequestID)
		wl.forwards[id] = append(wl.forwards[id], forward{strings.TrimPrefix(m.Subject, workers), time.Now()})
		wl.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe("_INBOX.>", func(m *nats.Msg) {
		if m.Header == nil || m.Header.Get(wire.HdrProgress) == "" || m.Header.Get(wire.HdrWorker) == "" {
			return
		}
		now := time.Now()
		wl.mu.Lock()
		for _, id := range m.Header[wire.HdrRequestID] {
			k := [2]string{m.Header.Get(wire.HdrWorker), id}
			wl.progress[k] = append(wl.progress[k], now)
		}
		wl.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return wl
}

func (wl *wireLog) of(id string) []forward {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return append([]forward(nil), wl.forwards[id]...)
}

// lastProgress is the last progress message worker sent for id before t
// (zero if none).
func (wl *wireLog) lastProgress(worker, id string, before time.Time) time.Time {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	var last time.Time
	for _, at := range wl.progress[[2]string{worker, id}] {
		if at.Before(before) {
			last = at
		}
	}
	return last
}

// minSilence is the least silence a dispatcher waits on a worker that
// sends progress before it sends the job elsewhere: silentAfterBeats (4)
// of the worker's default progress interval (100 ms). Halved, so that the
// watcher seeing a progress message later than the dispatcher did cannot
// fail the test.
const minSilence = 400 * time.Millisecond / 2

// runOnce checks the forwards of request id: a job goes to another worker
// only when the worker it was on had been silent past the dispatcher's
// window, and never twice to the same worker.
func (wl *wireLog) runOnce(t *testing.T, what, id string) {
	t.Helper()
	fs := wl.of(id)
	if len(fs) == 0 {
		t.Errorf("%s %s: never forwarded", what, id)
		return
	}
	for i := 1; i < len(fs); i++ {
		prev, next := fs[i-1], fs[i]
		if next.worker == prev.worker {
			t.Errorf("%s %s: forwarded twice to %s: %v", what, id, prev.worker, fs)
			continue
		}
		heard := wl.lastProgress(prev.worker, id, next.at)
		if heard.IsZero() {
			heard = prev.at
		}
		if gap := next.at.Sub(heard); gap < minSilence {
			t.Errorf("%s %s: sent on to %s %v after %s's last sign of life; want a silence of at least %v first: %v",
				what, id, next.worker, gap, prev.worker, minSilence, fs)
		}
	}
}

// doAll sends cmds at once through c and returns their results.
func doAll(t *testing.T, c *client.Client, cmds ...string) []*client.Result {
	t.Helper()
	res := make([]*client.Result, len(cmds))
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = c.Do(context.Background(), cmd)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", cmds[i], err)
		}
	}
	return res
}

// TestEndToEndLongJobs: with default settings (1s attempt timeout, the
// client's 2s of old), a spin 2500 and three sleep 4000 each get one
// correct reply and run once: a job goes to another worker only when its
// worker fell silent past the dispatcher's window, which a loaded machine
// can cause (a client's resend joins the request its dispatcher holds, so
// it is allowed). Then, of three sleep 2000, the one on a worker SIGKILLed
// and the one on a worker SIGSTOPped mid-job end on the worker left; how
// soon after their worker's last progress message is logged (400 ms on a
// quiet machine), a figure for benchmarks, not an assertion.
func TestEndToEndLongJobs(t *testing.T) {
	e := newEnv(t)
	url, _, workers := cluster1(t, e, nil, "w1", "w2", "w3")
	wl := watchWire(t, url)
	c, err := client.Connect(client.Config{URL: url, Name: "e2e-long"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	cmds := []string{"spin 2500", "sleep 4000", "sleep 4000", "sleep 4000"}
	for i, r := range doAll(t, c, cmds...) {
		if r.Reply.Error != nil || len(r.Reply.Result) == 0 {
			t.Errorf("%s: reply %+v; want a result", cmds[i], r.Reply)
		}
		t.Logf("%s %s: forwarded %d times, sent %d times", cmds[i], r.ID, len(wl.of(r.ID)), r.Sends)
		wl.runOnce(t, cmds[i], r.ID)
	}

	type job struct {
		res *client.Result
		err error
	}
	jobs := make(chan job, 3)
	for range 3 {
		go func() {
			r, err := c.Do(context.Background(), "sleep 2000")
			jobs <- job{r, err}
		}()
	}
	// Once each worker holds one and has said so.
	var held map[string]string // worker → request id
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		wl.mu.Lock()
		defer wl.mu.Unlock()
		held = map[string]string{}
		for id, fs := range wl.forwards {
			if len(fs) == 1 && len(wl.progress[[2]string{fs[0].worker, id}]) > 0 && time.Since(fs[0].at) < 1500*time.Millisecond {
				held[fs[0].worker] = id
			}
		}
		if held["w1"] == "" || held["w2"] == "" {
			return fmt.Errorf("held %v; want a sleep on w1 and on w2, with progress", held)
		}
		return nil
	})
	workers["w1"].kill(t)
	workers["w2"].signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { workers["w2"].signal(t, syscall.SIGCONT) })
	for range 3 {
		j := <-jobs
		if j.err != nil {
			t.Fatalf("sleep 2000: %v", j.err)
		}
	}
	for _, w := range []string{"w1", "w2"} {
		id := held[w]
		fs := wl.of(id)
		i := slices.IndexFunc(fs, func(f forward) bool { return f.worker == "w3" })
		if i < 0 {
			t.Errorf("the sleep on %s never reached w3: %v", w, fs)
			continue
		}
		gap := fs[i].at.Sub(wl.lastProgress(w, id, fs[i].at))
		t.Logf("%s: forwards=%d, started on w3 %v after %s's last sign of life", w, len(fs), gap.Round(time.Millisecond), w)
		wl.runOnce(t, "sleep 2000", id)
	}
}

// TestEndToEndFleetEfficiency sends a mix of 90% add and 10% spin 2500,
// at 8 requests a second for 15 s, through a dispatcher process to three
// worker processes, with the client library's defaults, and counts every
// forward on the wire: work executed (each forward counted in full, even
// one cancelled early) over work requested, in spin milliseconds (an add
// counts 0). It is logged (BENCHMARKS.md). Each spin must run once: on
// another worker only when the one it was on fell silent past the
// dispatcher's window. A client that finds its dispatcher slow to say it
// holds a request resends it, and the dispatcher joins the resend to the
// request it holds instead of forwarding it again.
func TestEndToEndFleetEfficiency(t *testing.T) {
	if testing.Short() {
		t.Skip("15 s of load")
	}
	e := newEnv(t)
	url, _, _ := cluster1(t, e, nil, "w1", "w2", "w3")
	wl := watchWire(t, url)
	c, err := client.Connect(client.Config{URL: url, Name: "e2e-mix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const (
		rate  = 8
		total = 15 * rate
	)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		spins  []string // request ids of the spins
		failed int
	)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := range total {
		<-tick.C
		cmd := "add 1 2"
		if i%10 == 5 {
			cmd = "spin 2500"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Do(context.Background(), cmd)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				t.Errorf("%s: %v", cmd, err)
				return
			}
			if cmd != "add 1 2" {
				spins = append(spins, r.ID)
			}
		}()
	}
	wg.Wait()
	executed := 0
	for _, id := range spins {
		executed += len(wl.of(id))
		wl.runOnce(t, "spin 2500", id)
	}
	st := c.Stats()
	t.Logf("efficiency: %d spin 2500 requested, %d executed: work executed / requested = %.3f; client resends %d; failed %d",
		len(spins), executed, float64(executed)/float64(len(spins)), st.Retries, failed)
}
