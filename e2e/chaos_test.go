//go:build chaos

package e2e

// The fault matrix: for each fault, a fresh deployment of separate
// processes (broker or three clustered brokers, two dispatchers, three
// workers; or, for the -in-broker faults, two clustered brokers with a
// dispatcher inside each and three workers), a load generator in this
// process using the client library, the
// fault injected mid-run, and every reply checked. Run it with
// scripts/chaos; each fault prints one line:
//
//	fault=... sent=... ok=... lost=... wrong=... dup=... p99=...ms detect=...ms recover=...ms
//
// and the test fails when a "must hold" of RELIABILITY.md is violated.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/loadcheck"
	"github.com/bilancia/bilancia/wire"
)

// Load shape: ~3,000 requests at 250/s from 4 clients, one in 10 a 20 ms
// sleep, the fault injected once a quarter is sent.
const (
	loadTotal   = 3000
	loadRate    = 250
	loadClients = 4
	loadMaxOpen = 400 // requests in flight at most
	sleepEvery  = 10
	injectAt    = loadTotal / 4
	heartbeat   = 200 * time.Millisecond
	// deadAfter is 5 heartbeats rather than the default 3: on this shared
	// 2-core machine a CPU-starved worker's heartbeat was seen 645 ms
	// apart, and 600 ms then declares a live worker dead (see
	// RELIABILITY.md). Production runs 1 s heartbeats and 3 s.
	deadAfter = time.Second
)

var (
	summaryMu sync.Mutex
	summary   []string
)

func TestChaos(t *testing.T) {
	t.Cleanup(func() {
		summaryMu.Lock()
		defer summaryMu.Unlock()
		fmt.Println("==== chaos summary (machine: " + strconv.Itoa(runtime.NumCPU()) + " cores)")
		for _, l := range summary {
			fmt.Println(l)
		}
	})
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) { runFault(t, f) })
	}
}

// fault is one row of the matrix.
type fault struct {
	name    string
	brokers int // 1, or 3 clustered
	// inBroker runs each dispatcher inside a broker of its own (broker
	// --dispatcher), the two brokers clustered, instead of as processes
	// of their own; brokers is then ignored.
	inBroker bool
	sleepMS  int                // the load's sleep op; 0 = 20
	ready    func(r *rig) error // polled before the injection, if set
	dflags   []string           // extra dispatcher flags
	window   time.Duration
	inject   func(r *rig)
	heal     func(r *rig) // optional, run heal after inject
	healWait time.Duration
	// detect returns when the system noticed the fault.
	detect func(r *rig) (time.Time, bool)
	// rejoin returns when the system was whole again, if that is a thing
	// for this fault; recover is the later of it and the last request
	// hurt by the fault.
	rejoin func(r *rig) (time.Time, bool)
	check  func(r *rig, m *metrics)
}

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

// ---- load ----

// load sends loadTotal requests through loadClients clients with
// loadcheck's checked load, in the background, and counts the replies that
// reach the wire, duplicates included.
type load struct {
	clients []*client.Client
	conns   []*nats.Conn
	recs    []*loadcheck.Record
	wire    loadcheck.Wire
	sent    atomic.Int64 // requests sent so far
	n       int          // requests sent in all; set before allDone is closed
	err     error        // why the sending stopped short; likewise
	stop    context.CancelFunc
	allDone chan struct{}
}

func startLoad(t *testing.T, url string, sleepMS int) *load {
	l := &load{allDone: make(chan struct{})}
	for i := range loadClients {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("chaos-c%d", i)), nats.MaxReconnects(-1),
			nats.ReconnectWait(250*time.Millisecond), nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.wire.Watch(nc); err != nil {
			t.Fatal(err)
		}
		c, err := client.Connect(client.Config{Conn: nc, Name: fmt.Sprintf("chaos-c%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		l.clients = append(l.clients, c)
		l.conns = append(l.conns, nc)
	}
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	t.Cleanup(func() {
		l.stop()
		l.wait(30 * time.Second)
		for i, c := range l.clients {
			c.Close()
			l.conns[i].Close()
		}
	})

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	l.recs = loadcheck.Draw(rng, loadTotal, sleepEvery, time.Duration(sleepMS)*time.Millisecond)
	// Each request has the client's own deadline, 10 s.
	pace := loadcheck.Pace{Rate: loadRate, MaxOpen: loadMaxOpen}
	go func() {
		defer close(l.allDone)
		l.n, l.err = loadcheck.Send(ctx, l.clients, l.recs, pace, func(i int) { l.sent.Store(int64(i) + 1) })
	}()
	return l
}

func (l *load) wait(timeout time.Duration) bool {
	select {
	case <-l.allDone:
		return true
	case <-time.After(timeout):
		return false
	}
}

// records returns the records of requests sent, once all are answered.
func (l *load) records() []*loadcheck.Record {
	<-l.allDone
	return l.recs[:l.n]
}

// ---- metrics ----

type metrics struct {
	sent, ok, lost, wrong, dup, distinct int
	e503, noReply                        int
	wireDup                              int
	wireOverSends                        []string
	p99                                  time.Duration
	detect, recover                      time.Duration
	detected, recovered                  bool
	wrongs, losts                        []string
}

func (r *rig) measure(f fault, recs []*loadcheck.Record) *metrics {
	m := &metrics{sent: len(recs)}
	ids := map[string]bool{}
	var during []time.Duration
	var lastHurt time.Time
	from, to := r.injected.Add(-3*time.Second), r.injected.Add(f.window)
	wireN := r.load.wire.Counts()
	for _, rc := range recs {
		switch {
		case rc.OK():
			m.ok++
		case rc.Wrong != "":
			m.wrong++
			m.wrongs = append(m.wrongs, rc.Wrong)
		default:
			m.lost++
			if rc.Res == nil {
				m.noReply++
			}
			if rc.Code() == wire.CodeUnavailable && rc.Res != nil {
				m.e503++
			}
			if len(m.losts) < 10 {
				m.losts = append(m.losts, fmt.Sprintf("%s: %v (after %v)", rc.Cmd, rc.Err, rc.Done.Sub(rc.Sent).Round(time.Millisecond)))
			}
		}
		if rc.Res != nil {
			if ids[rc.Res.ID] {
				m.dup++
			}
			ids[rc.Res.ID] = true
			if n := wireN[rc.Res.ID]; n > rc.Res.Sends {
				m.wireOverSends = append(m.wireOverSends, fmt.Sprintf("%s: %d replies to %d sends", rc.Res.ID, n, rc.Res.Sends))
			}
		}
		if !rc.Sent.Before(r.injected) && rc.Sent.Before(to) {
			during = append(during, rc.Done.Sub(rc.Sent))
		}
		if rc.Hurt() && !rc.Sent.Before(from) && rc.Sent.Before(to) && rc.Done.After(lastHurt) {
			lastHurt = rc.Done
		}
	}
	m.distinct = len(ids)
	for _, n := range wireN {
		m.wireDup += max(0, n-1)
	}
	m.p99 = loadcheck.Percentile(during, 99)
	if at, ok := f.detect(r); ok {
		m.detect, m.detected = at.Sub(r.injected), true
	}
	end := lastHurt
	if f.rejoin != nil {
		at, ok := f.rejoin(r)
		if !ok {
			end = time.Time{}
		} else if at.After(end) {
			end = at
		}
	}
	if !end.IsZero() {
		m.recover, m.recovered = max(0, end.Sub(r.injected)), true
	}
	return m
}

func ms(d time.Duration, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func (m *metrics) line(name string, extra []string) string {
	s := fmt.Sprintf("fault=%s sent=%d ok=%d lost=%d wrong=%d dup=%d p99=%dms detect=%s recover=%s",
		name, m.sent, m.ok, m.lost, m.wrong, m.dup, m.p99.Milliseconds(), ms(m.detect, m.detected), ms(m.recover, m.recovered))
	s += fmt.Sprintf(" distinct=%d wire_dup=%d", m.distinct, m.wireDup)
	if len(extra) > 0 {
		s += " " + strings.Join(extra, " ")
	}
	return s
}

// mustNoLoss is the check shared by every fault but the total outage.
func mustNoLoss(r *rig, m *metrics) {
	t := r.t
	if m.lost != 0 {
		t.Errorf("%d requests lost (%d without any reply), e.g.:\n%s", m.lost, m.noReply, strings.Join(m.losts, "\n"))
	}
	mustCorrect(r, m)
}

func mustCorrect(r *rig, m *metrics) {
	t := r.t
	if m.wrong != 0 {
		t.Errorf("%d wrong results, e.g. %v", m.wrong, m.wrongs[:min(5, len(m.wrongs))])
	}
	if m.dup != 0 {
		t.Errorf("%d requests answered twice to the caller", m.dup)
	}
	if len(m.wireOverSends) > 0 {
		t.Errorf("a send answered more than once on the wire: %v", m.wireOverSends[:min(5, len(m.wireOverSends))])
	}
	if m.sent < loadTotal {
		t.Errorf("the load sent %d of %d requests (%v)", m.sent, loadTotal, r.load.err)
	}
}

// ---- the run ----

func runFault(t *testing.T, f fault) {
	r := newRig(t, f)
	r.load = startLoad(t, r.url, cmp.Or(f.sleepMS, 20))
	testutil.CheckFor(t, 60*time.Second, 5*time.Millisecond, func() error {
		if n := r.load.sent.Load(); n < injectAt {
			return fmt.Errorf("%d requests sent, want %d before the fault", n, injectAt)
		}
		return nil
	})
	if f.ready != nil {
		testutil.CheckFor(t, 20*time.Second, time.Millisecond, func() error { return f.ready(r) })
	}
	r.injected = time.Now()
	f.inject(r)
	if f.heal != nil {
		time.Sleep(f.healWait) // the length of the fault, not a synchronisation
		r.healed = time.Now()
		f.heal(r)
		r.note("heal=%dms", r.healed.Sub(r.injected).Milliseconds())
	}
	if !r.load.wait(90 * time.Second) {
		t.Fatalf("the load did not finish within 90s")
	}
	recs := r.load.records()
	r.stopDispatchers()
	m := r.measure(f, recs)
	if f.check != nil {
		f.check(r, m)
	}
	line := m.line(f.name, r.extra)
	fmt.Println(line)
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
}

// ---- faults ----

var faults = []fault{
	{
		name:   "worker-kill",
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w2"].kill(r.t) },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker down", "w2", r.injected) },
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			// Each dispatcher notices at its first forward to the dead
			// worker, not after the heartbeat timeout.
			for id, lines := range r.logs() {
				l, ok := event(lines, "worker down", "w2", r.injected)
				if !ok {
					r.t.Errorf("%s never marked w2 down", id)
					continue
				}
				r.note("%s_down=%dms(%s)", id, l.Time.Sub(r.injected).Milliseconds(), strings.ReplaceAll(l.Reason, " ", "_"))
				if l.Reason != "no responders" {
					r.t.Errorf("%s marked w2 down for %q, want \"no responders\"", id, l.Reason)
				}
			}
		},
	},
	{
		name:     "worker-hang",
		window:   6 * time.Second,
		inject:   func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGSTOP) },
		healWait: 5 * time.Second,
		heal:     func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGCONT) },
		detect:   func(r *rig) (time.Time, bool) { return r.firstEvent("worker down", "w2", r.injected) },
		rejoin:   func(r *rig) (time.Time, bool) { return lastRejoin(r, "w2") },
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			if _, ok := lastRejoin(r, "w2"); !ok {
				r.t.Errorf("w2 did not rejoin in every dispatcher after SIGCONT")
			}
			hedged := 0
			for _, rc := range r.load.records() {
				if rc.Res != nil && rc.Res.Attempts > 1 && !rc.Sent.Before(r.injected.Add(-time.Second)) && rc.Sent.Before(r.healed) {
					hedged++
				}
			}
			r.note("retried_elsewhere=%d", hedged)
			served := 0
			for _, lines := range r.logs() {
				for _, l := range requests(lines) {
					if l.Worker == "w2" && l.start().After(r.healed) {
						served++
					}
				}
			}
			r.note("w2_served_after_rejoin=%d", served)
			if served == 0 {
				r.t.Errorf("w2 got no traffic after it rejoined")
			}
		},
	},
	{
		name: "worker-drain",
		// Longer sleeps, and the SIGTERM once w2 has work in hand, so that
		// there is something in flight to finish.
		sleepMS: 300,
		ready: func(r *rig) error {
			st, err := r.statusWait(5 * time.Millisecond)
			if err != nil {
				return err
			}
			for _, s := range st {
				for _, w := range s.Workers {
					if w.ID == "w2" && w.Inflight > 0 {
						return nil
					}
				}
			}
			return errors.New("w2 has nothing in flight")
		},
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w2"].signal(r.t, syscall.SIGTERM) },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker draining", "w2", r.injected) },
		rejoin: func(r *rig) (time.Time, bool) {
			if _, err := r.ws["w2"].wait(40 * time.Second); err != nil {
				return time.Time{}, false
			}
			return textEvent(r.ws["w2"].output(), `msg="worker stopped"`, r.injected)
		},
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			w := r.ws["w2"]
			code, err := w.wait(40 * time.Second)
			if err != nil || code != 0 {
				r.t.Errorf("w2 after SIGTERM: exit %d, %v", code, err)
			}
			if !strings.Contains(w.output(), "errors=0") {
				r.t.Errorf("w2 did not stop cleanly:\n%s", w.output())
			}
			finished := 0
			for id, lines := range r.logs() {
				dr, ok := event(lines, "worker draining", "w2", r.injected)
				if !ok {
					r.t.Errorf("%s never saw w2 draining", id)
					continue
				}
				for _, l := range requests(lines) {
					if l.Worker != "w2" {
						continue
					}
					if l.start().After(dr.Time) {
						r.t.Errorf("%s forwarded a request to w2 after it said it drains: %s", id, l.raw)
					}
					if l.Time.After(dr.Time) {
						finished++
					}
				}
				if l, ok := event(lines, "worker down", "w2", r.injected); ok && l.Reason == "no responders" {
					r.t.Errorf("%s: a request reached w2 after it unsubscribed: %s", id, l.raw)
				}
			}
			r.note("inflight_finished_on_w2=%d", finished)
			if m := drainingInflight.FindStringSubmatch(w.output()); m != nil {
				r.note("w2_inflight_at_sigterm=%s", m[1])
			}
		},
	},
	{
		name:   "worker-join",
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w4"] = r.e.worker(r.url, "w4") },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker up", "w4", r.injected) },
		rejoin: func(r *rig) (time.Time, bool) {
			// Recovered = the new capacity is used by every dispatcher.
			var last time.Time
			for _, lines := range r.logs() {
				f, ok := firstRequestTo(lines, "w4")
				if !ok {
					return time.Time{}, false
				}
				if f.start().After(last) {
					last = f.start()
				}
			}
			return last, true
		},
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			for id, lines := range r.logs() {
				up, ok := event(lines, "worker up", "w4", r.injected)
				if !ok {
					r.t.Errorf("%s never saw w4 up", id)
					continue
				}
				f, ok := firstRequestTo(lines, "w4")
				if !ok {
					r.t.Errorf("%s never forwarded to w4", id)
					continue
				}
				gap := f.start().Sub(up.Time)
				r.note("%s_up_to_traffic=%dms", id, gap.Milliseconds())
				if gap > heartbeat {
					r.t.Errorf("%s: first request to w4 %v after it came up, want within one heartbeat (%v)", id, gap, heartbeat)
				}
			}
		},
	},
	{
		name: "slow-worker",
		// A worker slower than the attempt timeout: its requests are
		// hedged to the others, and it is ejected after 5 in a row.
		dflags: []string{"--attempt-timeout", "200ms"},
		window: 3 * time.Second,
		inject: func(r *rig) { r.ws["w4"] = r.e.worker(r.url, "w4", "--delay", "300ms") },
		detect: func(r *rig) (time.Time, bool) { return r.firstEvent("worker ejected", "w4", r.injected) },
		rejoin: func(r *rig) (time.Time, bool) { return r.firstEvent("worker ejected", "w4", r.injected) },
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			for id, lines := range r.logs() {
				l, ok := event(lines, "worker ejected", "w4", r.injected)
				if !ok {
					r.t.Errorf("%s never ejected the slow worker", id)
					continue
				}
				r.note("%s_ejected=%dms", id, l.Time.Sub(r.injected).Milliseconds())
			}
			// The rest: requests that never touched w4 (first attempt on a
			// healthy worker), before and during the fault.
			var before, during []time.Duration
			for _, rc := range r.load.records() {
				if rc.Res == nil || rc.Res.Attempts != 1 || rc.Res.Worker == "w4" || rc.Want == nil {
					continue
				}
				d := rc.Done.Sub(rc.Sent)
				if rc.Sent.Before(r.injected) {
					before = append(before, d)
				} else if rc.Sent.Before(r.injected.Add(3 * time.Second)) {
					during = append(during, d)
				}
			}
			r.note("others_p99_before=%dms others_p99_during=%dms", loadcheck.Percentile(before, 99).Milliseconds(), loadcheck.Percentile(during, 99).Milliseconds())
		},
	},
	{
		name: "dispatcher-kill",
		// Longer sleeps, and the kill once d1 holds requests, so that some
		// die with it and must be sent again by their clients.
		sleepMS: 300,
		ready: func(r *rig) error {
			st, err := r.statusWait(5 * time.Millisecond)
			if err != nil {
				return err
			}
			for _, s := range st {
				if s.Dispatcher == "d1" && s.Inflight > 0 {
					return nil
				}
			}
			return errors.New("d1 has nothing in flight")
		},
		window: 3 * time.Second,
		inject: func(r *rig) { r.ds["d1"].kill(r.t) },
		detect: func(r *rig) (time.Time, bool) {
			// The first failover: the first request answered after the
			// client sent it again.
			var first time.Time
			for _, rc := range r.load.records() {
				if rc.Res != nil && rc.Res.Sends > 1 && !rc.Done.Before(r.injected) && (first.IsZero() || rc.Done.Before(first)) {
					first = rc.Done
				}
			}
			return first, !first.IsZero()
		},
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			retried := 0
			for _, rc := range r.load.records() {
				if rc.Res != nil && rc.Res.Sends > 1 {
					retried++
				}
			}
			r.note("client_retried=%d", retried)
			if retried == 0 {
				r.t.Errorf("no request was sent again: the kill caught nothing in flight")
			}
		},
	},
	{
		name:    "broker-node-loss",
		brokers: 3,
		window:  3 * time.Second,
		inject: func(r *rig) {
			b := r.brokerOf("bilancia-worker w1")
			r.note("killed=%s", b.name)
			b.kill(r.t)
		},
		detect: func(r *rig) (time.Time, bool) {
			return textEvent(r.ws["w1"].output(), `msg="nats disconnected"`, r.injected)
		},
		rejoin: func(r *rig) (time.Time, bool) {
			return textEvent(r.ws["w1"].output(), `msg="nats reconnected"`, r.injected)
		},
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			if _, ok := textEvent(r.ws["w1"].output(), `msg="nats reconnected"`, r.injected); !ok {
				r.t.Errorf("w1 did not reconnect:\n%s", r.ws["w1"].output())
			}
			served := 0
			for _, lines := range r.logs() {
				for _, l := range requests(lines) {
					if l.Worker == "w1" && l.start().After(r.injected.Add(2*time.Second)) {
						served++
					}
				}
			}
			r.note("w1_served_after=%d", served)
			if served == 0 {
				r.t.Errorf("w1 served nothing after it reconnected")
			}
		},
	},
	{
		name:     "cpu-saturation",
		window:   5 * time.Second,
		inject:   func(r *rig) { r.startSpin(32, 300, 5*time.Second) },
		healWait: 5 * time.Second,
		heal:     func(r *rig) {},
		detect:   func(r *rig) (time.Time, bool) { return time.Time{}, false },
		check: func(r *rig, m *metrics) {
			mustNoLoss(r, m)
			r.mu.Lock()
			r.note("spin_ok=%d spin_failed=%d", r.spin.ok, r.spin.failed)
			r.mu.Unlock()
			ejected := 0
			for id, lines := range r.logs() {
				for _, l := range lines {
					if l.Time.Before(r.injected) {
						continue
					}
					switch l.Msg {
					case "worker down":
						r.t.Errorf("%s declared %s down during CPU saturation: %s", id, l.Worker, l.raw)
					case "worker ejected":
						ejected++
					}
				}
			}
			r.note("ejections=%d", ejected)
		},
	},
	{
		name:   "all-workers-down",
		window: 4 * time.Second,
		inject: func(r *rig) {
			for _, id := range []string{"w1", "w2", "w3"} {
				r.ws[id].signal(r.t, syscall.SIGKILL)
			}
			for _, id := range []string{"w1", "w2", "w3"} {
				if _, err := r.ws[id].wait(10 * time.Second); err != nil {
					r.t.Fatal(err)
				}
			}
		},
		healWait: 3 * time.Second,
		heal: func(r *rig) {
			for _, id := range []string{"w1", "w2", "w3"} {
				r.ws[id] = r.e.worker(r.url, id)
			}
		},
		detect: func(r *rig) (time.Time, bool) {
			var first time.Time
			for _, rc := range r.load.records() {
				if rc.Code() == wire.CodeUnavailable && !rc.Done.Before(r.injected) && (first.IsZero() || rc.Done.Before(first)) {
					first = rc.Done
				}
			}
			return first, !first.IsZero()
		},
		rejoin: func(r *rig) (time.Time, bool) {
			// Service is back at the first success after the restart.
			var first time.Time
			for _, rc := range r.load.records() {
				if rc.OK() && rc.Sent.After(r.healed) && (first.IsZero() || rc.Done.Before(first)) {
					first = rc.Done
				}
			}
			return first, !first.IsZero()
		},
		check: func(r *rig, m *metrics) {
			mustCorrect(r, m)
			var fast []time.Duration
			others := 0
			var otherEx []string
			resumedFail := 0
			for _, rc := range r.load.records() {
				if rc.OK() {
					continue
				}
				if rc.Res != nil && rc.Code() == wire.CodeUnavailable {
					fast = append(fast, rc.Done.Sub(rc.Sent))
				} else {
					others++
					if len(otherEx) < 5 {
						otherEx = append(otherEx, fmt.Sprintf("%s: %v after %v", rc.Cmd, rc.Err, rc.Done.Sub(rc.Sent).Round(time.Millisecond)))
					}
				}
				if rc.Sent.After(r.healed.Add(2 * time.Second)) {
					resumedFail++
				}
			}
			p99, worst := loadcheck.Percentile(fast, 99), loadcheck.Percentile(fast, 100)
			r.note("e503=%d p99_503=%dms max_503=%dms other_failures=%d", len(fast), p99.Milliseconds(), worst.Milliseconds(), others)
			if m.noReply != 0 || others != 0 {
				r.t.Errorf("%d requests without a reply and %d other failures; want every request answered ok or 503: %v", m.noReply, others, otherEx)
			}
			if len(fast) == 0 {
				r.t.Errorf("no 503 during the outage")
			}
			if p99 >= time.Second {
				r.t.Errorf("503s are slow: p99 %v, max %v; want well under a second", p99, worst)
			}
			if resumedFail != 0 {
				r.t.Errorf("%d requests sent 2s after the restart failed: service did not resume", resumedFail)
			}
		},
	},
}

var drainingInflight = regexp.MustCompile(`msg="worker draining" id=w2 inflight=(\d+)`)

// lastRejoin is when the last dispatcher saw w up again after the heal.
func lastRejoin(r *rig, w string) (time.Time, bool) {
	var last time.Time
	for _, lines := range r.logs() {
		l, ok := event(lines, "worker up", w, r.healed)
		if !ok {
			return time.Time{}, false
		}
		if l.Time.After(last) {
			last = l.Time
		}
	}
	return last, true
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
// it move to the other broker and send again.
var inBrokerFaults = []string{"worker-kill", "worker-hang", "worker-drain", "slow-worker", "dispatcher-kill", "all-workers-down"}

func init() {
	for _, f := range faults[:len(faults):len(faults)] {
		if slices.Contains(inBrokerFaults, f.name) {
			f.name += "-in-broker"
			f.inBroker = true
			faults = append(faults, f)
		}
	}
}
