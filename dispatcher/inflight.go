package dispatcher

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/bilancia/bilancia/dispatcher/flight"
)

// The requests in flight live in the core (package flight), which makes
// every decision about them. The shell calls it under one lock, mu, from
// the subscription handlers and the sweep (sweep.go), and carries out the
// actions it returns once the lock is released (actions.go).
type inflight struct {
	mu   sync.Mutex
	core *flight.Core
	// planned is when the sweep wakes next, next when the core's earliest
	// timer is due (math.MaxInt64: none); guarded by mu.
	planned, next int64
	wake          chan struct{} // wakes the sweep for a timer due sooner
	inbox         string        // "<inbox>." prefix of forward reply subjects; set by Start

	count   atomic.Int64 // requests open or parked, read without the lock
	nParked atomic.Int64
}

// actionBufs are the action slices of the steps, so that a step
// allocates none.
var actionBufs = sync.Pool{New: func() any { s := make([]flight.Action, 0, 8); return &s }}

// step feeds ev to the core and returns its actions, to be carried out
// with act and then given back with release.
func (d *Dispatcher) step(ev flight.Event) *[]flight.Action {
	buf := actionBufs.Get().(*[]flight.Action)
	t := &d.inflight
	t.mu.Lock()
	*buf = t.core.Step(ev, (*buf)[:0])
	d.noteLocked(*buf)
	t.mu.Unlock()
	return buf
}

// noteLocked records, under the lock, what the sweep must know of the
// actions: a timer due before it planned to wake wakes it.
func (d *Dispatcher) noteLocked(acts []flight.Action) {
	t := &d.inflight
	t.count.Store(int64(t.core.Inflight()))
	t.nParked.Store(int64(t.core.Parked()))
	if n := len(acts); n > 0 && acts[n-1].Kind == flight.ActWake {
		at := acts[n-1].At
		t.next = at
		if at < t.planned {
			t.planned = at
			select {
			case t.wake <- struct{}{}:
			default:
			}
		}
	}
}

// run feeds ev to the core and carries out its actions.
func (d *Dispatcher) run(ev flight.Event) {
	buf := d.step(ev)
	d.act(*buf)
	release(buf)
}

func release(buf *[]flight.Action) {
	clear(*buf)
	*buf = (*buf)[:0]
	actionBufs.Put(buf)
}

// tick feeds the sweep's EvTick to the core, and plans its next wake, at
// the earliest timer or at most at limit.
func (d *Dispatcher) tick(ev flight.Event, limit int64) (*[]flight.Action, int64) {
	buf := actionBufs.Get().(*[]flight.Action)
	t := &d.inflight
	t.mu.Lock()
	t.next, t.planned = math.MaxInt64, math.MinInt64 // nothing wakes the sweep while it runs
	*buf = t.core.Step(ev, (*buf)[:0])
	d.noteLocked(*buf)
	t.planned = min(t.next, limit)
	next := t.planned
	t.mu.Unlock()
	return buf, next
}

// coreStats reads the core's counters under the lock.
func (d *Dispatcher) coreStats() (c flight.Counts, retrying int) {
	d.inflight.mu.Lock()
	defer d.inflight.mu.Unlock()
	return d.inflight.core.Counts(), d.inflight.core.Retrying()
}

// pool is the core's view of membership: the picker over the live
// workers, or the suspects when none is live. Its methods run inside a
// step, under the lock.
type pool struct {
	d      *Dispatcher
	skip   *flight.Skip
	skipFn func(*member) bool // reads skip: made once, so that a pick allocates nothing
}

func newPool(d *Dispatcher) *pool {
	p := &pool{d: d}
	p.skipFn = func(m *member) bool { return p.skip.Skips(workerOf(m)) }
	return p
}

func (p *pool) Pick(s *flight.Skip) *flight.Worker {
	p.skip = s
	m := p.d.pick.pick(p.d.mem.Live(), p.skipFn)
	if m == nil {
		m = p.d.pick.pick(p.d.mem.Suspects(), p.skipFn)
	}
	p.skip = nil
	if m == nil {
		return nil
	}
	if m.replyTo == "" {
		m.replyTo = p.d.inflight.inbox + m.id // read by the forward, after the lock
	}
	return workerOf(m)
}

func (p *pool) AnyLive(s *flight.Skip) bool {
	for _, m := range p.d.mem.Live() {
		if !s.Skips(workerOf(m)) {
			return true
		}
	}
	return false
}

func (p *pool) Inflight(w *flight.Worker, n int) { memberOf(w).inflight.Store(int64(n)) }

// workerOf is the core's record of m.
func workerOf(m *member) *flight.Worker { return &m.fw }

// memberOf is the member whose record w is.
func memberOf(w *flight.Worker) *member { return w.Ref.(*member) }
