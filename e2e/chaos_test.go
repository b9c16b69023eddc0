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
//
// The load and its scoring are package loadcheck's, shared with
// scripts/compose-test; detection and recovery are timed here, from the
// processes' logs, and the dup column counts request ids returned to the
// caller twice. This file runs a fault; chaos_rig_test.go is the
// deployment, chaos_faults_test.go the rows of the matrix.

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/loadcheck"
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
	check  func(r *rig, s *loadcheck.Score)
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
	s, cols := r.measure(f, recs)
	if f.check != nil {
		f.check(r, s)
	}
	line := cols.Line() + fmt.Sprintf(" distinct=%d wire_dup=%d", s.Distinct, s.WireDup)
	if len(r.extra) > 0 {
		line += " " + strings.Join(r.extra, " ")
	}
	fmt.Println(line)
	summaryMu.Lock()
	summary = append(summary, line)
	summaryMu.Unlock()
}

// ---- load ----

// load sends loadTotal requests through loadClients clients with
// loadcheck's checked load, in the background, and counts the replies that
// reach the wire, duplicates included.
type load struct {
	clients *loadcheck.Clients
	recs    []*loadcheck.Record
	sent    atomic.Int64 // requests sent so far
	n       int          // requests sent in all; set before allDone is closed
	err     error        // why the sending stopped short; likewise
	stop    context.CancelFunc
	allDone chan struct{}
}

func startLoad(t *testing.T, url string, sleepMS int) *load {
	dial := func(name string, _ int) (*nats.Conn, error) { return nats.Connect(url, natsutil.Options(name, nil)...) }
	clients, err := loadcheck.Dial(loadClients, "chaos", dial, client.Config{})
	if err != nil {
		t.Fatal(err)
	}
	l := &load{clients: clients, allDone: make(chan struct{})}
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	t.Cleanup(func() {
		l.stop()
		l.wait(30 * time.Second)
		l.clients.Close()
	})

	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	l.recs = loadcheck.Draw(rng, loadTotal, sleepEvery, time.Duration(sleepMS)*time.Millisecond)
	// Each request has the client's own deadline, 10 s.
	pace := loadcheck.Pace{Rate: loadRate, MaxOpen: loadMaxOpen}
	go func() {
		defer close(l.allDone)
		l.n, l.err = loadcheck.Send(ctx, l.clients.List, l.recs, pace, func(i int) { l.sent.Store(int64(i) + 1) })
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

// ---- scoring ----

// measure scores the load with loadcheck's scorer, and times detection and
// recovery as the fault says.
func (r *rig) measure(f fault, recs []*loadcheck.Record) (*loadcheck.Score, loadcheck.Columns) {
	s := loadcheck.Measure(recs, r.load.clients.Wire.Counts(), r.injected, f.window)
	cols := s.Columns(f.name, s.DupIDs)
	if at, ok := f.detect(r); ok {
		cols.Detect, cols.Detected = at.Sub(r.injected), true
	}
	var rejoin func() (time.Time, bool)
	if f.rejoin != nil {
		rejoin = func() (time.Time, bool) { return f.rejoin(r) }
	}
	// Nothing hurt and nothing to rejoin: recover=none (where
	// loadcheck's own report says 0ms).
	if end, ok := s.Recovery(rejoin); ok && !end.IsZero() {
		cols.Recover, cols.Recovered = max(0, end.Sub(r.injected)), true
	}
	return s, cols
}

// mustNoLoss is the check shared by every fault but the total outage.
func mustNoLoss(r *rig, s *loadcheck.Score) {
	t := r.t
	if s.Lost != 0 {
		t.Errorf("%d requests lost (%d without any reply), e.g.:\n%s", s.Lost, s.NoReply, strings.Join(s.Losts, "\n"))
	}
	mustCorrect(r, s)
}

func mustCorrect(r *rig, s *loadcheck.Score) {
	t := r.t
	if s.Wrong != 0 {
		t.Errorf("%d wrong results, e.g. %v", s.Wrong, s.Wrongs[:min(5, len(s.Wrongs))])
	}
	if s.DupIDs != 0 {
		t.Errorf("%d requests answered twice to the caller", s.DupIDs)
	}
	if s.OverSends > 0 {
		t.Errorf("a send answered more than once on the wire: %v", s.OverSent[:min(5, len(s.OverSent))])
	}
	if s.Sent < loadTotal {
		t.Errorf("the load sent %d of %d requests (%v)", s.Sent, loadTotal, r.load.err)
	}
}
