//go:build chaos

package e2e

// The chaos matrix's deployment under test (a rig) and what the faults ask
// of it: the dispatchers' status and logs, the broker a connection is on,
// a CPU load of spins.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// rig is one deployment under test.
type rig struct {
	t       *testing.T
	e       *env
	url     string // every broker, comma separated
	brokers []*broker
	ds      map[string]*proc
	ws      map[string]*proc
	status  *client.Client

	load     *load
	injected time.Time
	healed   time.Time
	extra    []string // more key=value for the fault line
	mu       sync.Mutex
	spin     spinStats
	long     chan *client.Result // startLong's results; nil for a failure
	longN    int
}

func (r *rig) note(kv string, args ...any) { r.extra = append(r.extra, fmt.Sprintf(kv, args...)) }

func newRig(t *testing.T, f fault) *rig {
	e := newEnv(t)
	r := &rig{t: t, e: e, ds: map[string]*proc{}, ws: map[string]*proc{}}
	dflags := append([]string{"--dead-after", deadAfter.String()}, f.dflags...)
	switch {
	case f.inBroker:
		b1 := e.brokerDispatcher("b1", "d1", append([]string{"--cluster-port=-1", "--http-port=-1", "--name=b1"}, dflags...)...)
		b2 := e.brokerDispatcher("b2", "d2", append([]string{"--cluster-port=-1", "--http-port=-1", "--name=b2", "--routes=" + b1.RouteURL}, dflags...)...)
		r.brokers = []*broker{b1, b2}
		r.ds["d1"], r.ds["d2"] = b1.proc, b2.proc
	case f.brokers <= 1:
		r.brokers = []*broker{e.broker("b1")}
	default:
		b1 := e.broker("b1", "--cluster-port=-1", "--http-port=-1", "--name=b1")
		b2 := e.broker("b2", "--cluster-port=-1", "--http-port=-1", "--name=b2", "--routes="+b1.RouteURL)
		b3 := e.broker("b3", "--cluster-port=-1", "--http-port=-1", "--name=b3", "--routes="+b1.RouteURL+","+b2.RouteURL)
		r.brokers = []*broker{b1, b2, b3}
	}
	var urls []string
	for _, b := range r.brokers {
		urls = append(urls, b.URL)
	}
	r.url = strings.Join(urls, ",")
	if !f.inBroker {
		for _, id := range []string{"d1", "d2"} {
			r.ds[id] = e.dispatcher(r.url, id, dflags...)
		}
	}
	for _, id := range []string{"w1", "w2", "w3"} {
		r.ws[id] = e.worker(r.url, id)
	}
	st, err := client.Connect(client.Config{URL: r.url, Name: "chaos-status"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	r.status = st
	r.waitUp(20*time.Second, 2, "w1", "w2", "w3")
	return r
}

// statusNow asks every dispatcher for its view.
func (r *rig) statusNow() ([]wire.Status, error) { return r.statusWait(150 * time.Millisecond) }

// statusWait asks the dispatchers for their view and takes the answers
// that come within wait of the first: a short wait for a quick look.
func (r *rig) statusWait(wait time.Duration) ([]wire.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return r.status.Status(ctx, wait)
}

func (r *rig) waitUp(timeout time.Duration, dispatchers int, ids ...string) {
	r.t.Helper()
	testutil.CheckFor(r.t, timeout, 50*time.Millisecond, func() error {
		st, err := r.statusNow()
		if err != nil {
			return err
		}
		return upWorkers(st, dispatchers, ids...)
	})
}

// logs reads every dispatcher's log.
func (r *rig) logs() map[string][]logLine {
	out := map[string][]logLine{}
	for id, d := range r.ds {
		out[id] = readLog(d.log)
	}
	return out
}

// firstEvent is the earliest line with msg for worker after since, in any
// dispatcher's log.
func (r *rig) firstEvent(msg, worker string, since time.Time) (time.Time, bool) {
	var best time.Time
	for _, lines := range r.logs() {
		if l, ok := event(lines, msg, worker, since); ok && (best.IsZero() || l.Time.Before(best)) {
			best = l.Time
		}
	}
	return best, !best.IsZero()
}

// stopDispatchers SIGTERMs the live dispatchers so that their logs are
// complete.
func (r *rig) stopDispatchers() {
	for _, d := range r.ds {
		if !d.exited() {
			d.signal(r.t, syscall.SIGTERM)
		}
	}
	for id, d := range r.ds {
		if _, err := d.wait(40 * time.Second); err != nil {
			r.t.Errorf("dispatcher %s: %v", id, err)
		}
	}
}

// holding is a fault's ready: a quick look at the dispatchers' status
// finds one for which holds is true, or else returns why not.
func holding(why string, holds func(wire.Status) bool) func(r *rig) error {
	return func(r *rig) error {
		st, err := r.statusWait(5 * time.Millisecond)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(st, holds) {
			return nil
		}
		return errors.New(why)
	}
}

// eachEvent calls f with every dispatcher's log and its first line msg
// about worker since the injection; a dispatcher without one fails the
// test: "<dispatcher> never <never>".
func (r *rig) eachEvent(msg, worker, never string, f func(id string, lines []logLine, l logLine)) {
	for id, lines := range r.logs() {
		l, ok := event(lines, msg, worker, r.injected)
		if !ok {
			r.t.Errorf("%s never %s", id, never)
			continue
		}
		f(id, lines, l)
	}
}

// latest is the latest of the times that at finds in the dispatchers'
// logs, if it finds one in every log.
func (r *rig) latest(at func(lines []logLine) (time.Time, bool)) (time.Time, bool) {
	var last time.Time
	for _, lines := range r.logs() {
		t, ok := at(lines)
		if !ok {
			return time.Time{}, false
		}
		if t.After(last) {
			last = t
		}
	}
	return last, true
}

// lastRejoin is when the last dispatcher saw w up again after the heal.
func (r *rig) lastRejoin(w string) (time.Time, bool) {
	return r.latest(func(lines []logLine) (time.Time, bool) {
		l, ok := event(lines, "worker up", w, r.healed)
		return l.Time, ok
	})
}

// served counts the requests the dispatchers forwarded to worker after t.
func (r *rig) served(worker string, after time.Time) int {
	n := 0
	for _, lines := range r.logs() {
		for _, l := range requests(lines) {
			if l.Worker == worker && l.start().After(after) {
				n++
			}
		}
	}
	return n
}

func firstRequestTo(lines []logLine, w string) (logLine, bool) {
	var first logLine
	found := false
	for _, l := range requests(lines) {
		if l.Worker == w && (!found || l.start().Before(first.start())) {
			first, found = l, true
		}
	}
	return first, found
}

// brokerOf finds the broker a connection with that name is on, from the
// brokers' monitoring endpoint.
func (r *rig) brokerOf(name string) *broker {
	r.t.Helper()
	for _, b := range r.brokers {
		resp, err := http.Get(b.MonitorURL + "/connz?limit=1000")
		if err != nil {
			r.t.Fatal(err)
		}
		var cz struct {
			Connections []struct {
				Name string `json:"name"`
			} `json:"connections"`
		}
		err = json.NewDecoder(resp.Body).Decode(&cz)
		resp.Body.Close()
		if err != nil {
			r.t.Fatal(err)
		}
		for _, c := range cz.Connections {
			if c.Name == name {
				return b
			}
		}
	}
	r.t.Fatalf("no broker holds a connection named %q", name)
	return nil
}

// startLong sends n sleep requests of ms milliseconds at once, through a
// client of its own; waitLong waits for them.
func (r *rig) startLong(n, ms int) {
	c, err := client.Connect(client.Config{URL: r.url, Name: "chaos-long"})
	if err != nil {
		r.t.Fatal(err)
	}
	r.long = make(chan *client.Result, n)
	r.longN = n
	for range n {
		go func() {
			res, err := c.Do(context.Background(), "sleep "+strconv.Itoa(ms))
			if err != nil {
				res = nil
			}
			r.long <- res
		}()
	}
	r.t.Cleanup(c.Close)
}

// waitLong returns, for each long job, its executions (the workers its
// dispatcher forwarded it to, "xN" more when its client sent it N times),
// and how many failed.
func (r *rig) waitLong() (execs []string, failed int) {
	for range r.longN {
		res := <-r.long
		switch {
		case res == nil:
			failed++
		case res.Sends > 1:
			execs = append(execs, fmt.Sprintf("%dx%d", res.Attempts, res.Sends))
		default:
			execs = append(execs, strconv.Itoa(res.Attempts))
		}
	}
	slices.Sort(execs)
	return execs, failed
}

type spinStats struct{ ok, failed int }

// startSpin keeps n spin requests of ms milliseconds in flight for d,
// through a client of its own.
func (r *rig) startSpin(n, ms int, d time.Duration) {
	c, err := client.Connect(client.Config{URL: r.url, Name: "chaos-spin"})
	if err != nil {
		r.t.Fatal(err)
	}
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000 && time.Now().Before(end); i++ {
				_, err := c.Do(context.Background(), "spin "+strconv.Itoa(ms))
				r.mu.Lock()
				if err != nil {
					r.spin.failed++
				} else {
					r.spin.ok++
				}
				r.mu.Unlock()
			}
		}()
	}
	r.t.Cleanup(func() { wg.Wait(); c.Close() })
}

// inBrokerFaults are run a second time with each dispatcher inside a
// broker of its own (broker --dispatcher, two brokers clustered): the
// deployment with the lowest latency keeps the same promises. There,
// dispatcher-kill SIGKILLs the broker with d1 inside, and the clients on
