package sim

import (
	"fmt"
	"sort"
	"strings"
)

// The fault schedule. Each seed enables its own mix of fault kinds
// (swarm testing: a run with only route cuts finds what a run drowned in
// every kind of fault does not), draws their times and lengths until
// FaultsEnd, then heals every one of them: the quiet phase, where
// liveness binds.

// FaultKind names a fault.
type FaultKind int

const (
	FBrokerKill FaultKind = iota
	FRouteCut
	FSplit
	FIsolate
	FWorkerCrash
	FWorkerRestart
	FWorkerHang
	FWorkerSlow
	FWorker500
	FWorkerDrain
	FDispatcherCrash
	FDispatcherHang
	FClientHang
	FLoss
	FDup
	FReorder
	nFaultKinds
)

var faultNames = [...]string{"broker-kill", "route-cut", "split", "isolate", "worker-crash",
	"worker-restart", "worker-hang", "worker-slow", "worker-500", "worker-drain",
	"dispatcher-crash", "dispatcher-hang", "client-hang", "loss", "dup", "reorder"}

func (k FaultKind) String() string { return faultNames[k] }

// faults is the run's schedule and what is active now.
type faults struct {
	s                  *Sim
	enabled            [nFaultKinds]bool
	rate               Time // mean gap between faults
	active             int  // faults not healed yet
	last               Time // when the last fault began or healed
	loss, dup, reorder int
	pLoss, pDup        float64
	heals              []func()
	splitOn            bool // a split is active: one at a time
}

func newFaults(s *Sim) *faults {
	f := &faults{s: s}
	any := false
	for k := range f.enabled {
		f.enabled[k] = s.rng.IntN(3) == 0
		any = any || f.enabled[k]
	}
	if !any && s.rng.IntN(4) != 0 {
		f.enabled[s.rng.IntN(int(nFaultKinds))] = true
	}
	f.rate = Time(200+s.rng.IntN(2000)) * Millisecond
	f.pLoss = []float64{0.01, 0.05, 0.2}[s.rng.IntN(3)]
	f.pDup = []float64{0.01, 0.1}[s.rng.IntN(2)]
	return f
}

// touch records a disturbance that follows from a fault (a connection
// lost or made, a route found down or up): calm starts again after it.
func (f *faults) touch() { f.last = f.s.clock.now }

func (f *faults) lossy() bool       { return f.loss > 0 && f.s.rng.Float64() < f.pLoss }
func (f *faults) duplicating() bool { return f.dup > 0 && f.s.rng.Float64() < f.pDup }
func (f *faults) reordering() bool  { return f.reorder > 0 }

// mix names the kinds enabled.
func (f *faults) mix() string {
	var l []string
	for k, on := range f.enabled {
		if on {
			l = append(l, FaultKind(k).String())
		}
	}
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ",")
}

// schedule draws the faults of the run.
func (f *faults) schedule() {
	var kinds []FaultKind
	for k, on := range f.enabled {
		if on {
			kinds = append(kinds, FaultKind(k))
		}
	}
	if len(kinds) == 0 {
		return
	}
	end := f.s.cfg.FaultsEnd
	for t := 300*Millisecond + f.s.pick(span{0, f.rate}); t < end; t += f.s.pick(span{f.rate / 2, f.rate * 3 / 2}) {
		k := kinds[f.s.rng.IntN(len(kinds))]
		length := f.s.pick(span{100 * Millisecond, 4 * Second})
		f.s.clock.at(t, func() { f.inject(k, length) })
	}
	f.s.clock.at(end, f.healAll)
}

// begin records a fault injected; its heal runs after length, or at the
// end of the fault phase.
func (f *faults) begin(k FaultKind, what string, length Time, heal func()) (healNow func()) {
	f.s.stats.faults[k]++
	f.active++
	f.last = f.s.clock.now
	f.s.tracef("FAULT %s %s for %v", k, what, length)
	done := false
	h := func() {
		if done {
			return
		}
		done = true
		f.active--
		f.last = f.s.clock.now
		f.s.tracef("HEAL %s %s", k, what)
		heal()
		f.s.net.recheck()
	}
	f.heals = append(f.heals, h)
	if length > 0 {
		f.s.clock.after(length, h)
	}
	f.s.net.recheck()
	return h
}

func (f *faults) healAll() {
	f.s.tracef("quiet phase: every fault heals")
	for _, h := range f.heals {
		h()
	}
	f.heals = nil
}

func (f *faults) inject(k FaultKind, length Time) {
	s := f.s
	n := s.net
	switch k {
	case FBrokerKill:
		b := n.brokers[s.rng.IntN(len(n.brokers))]
		if !b.alive {
			return
		}
		b.alive = false
		f.begin(k, fmt.Sprintf("b%d", b.id), length, func() { b.alive = true })
		for _, x := range n.nodes {
			x.recheckLink()
		}
	case FRouteCut:
		if len(n.brokers) < 2 {
			return
		}
		i := s.rng.IntN(len(n.brokers))
		j := (i + 1 + s.rng.IntN(len(n.brokers)-1)) % len(n.brokers)
		if n.routeCut[i][j] {
			return
		}
		n.routeCut[i][j], n.routeCut[j][i] = true, true
		f.begin(k, fmt.Sprintf("b%d-b%d", i, j), length, func() { n.routeCut[i][j], n.routeCut[j][i] = false, false })
	case FSplit:
		f.split(length)
	case FIsolate:
		x := n.nodes[s.rng.IntN(len(n.nodes))]
		if x.isolated {
			return
		}
		x.isolated = true
		f.begin(k, x.name, length, func() { x.isolated = false })
	case FWorkerCrash, FWorkerRestart, FWorkerHang, FWorkerSlow, FWorker500, FWorkerDrain:
		f.worker(k, s.workers[s.rng.IntN(len(s.workers))], length)
	case FDispatcherCrash, FDispatcherHang:
		d := s.dispatchers[s.rng.IntN(len(s.dispatchers))]
		if d.dead || d.hung {
			return
		}
		if k == FDispatcherHang {
			d.hang()
			f.begin(k, d.name, length, d.resume)
			return
		}
		d.crash()
		f.begin(k, d.name, length, d.start)
	case FClientHang:
		c := s.clients[s.rng.IntN(len(s.clients))]
		if c.hung {
			return
		}
		c.hang()
		f.begin(k, c.name, min(length, Second), c.resume)
	case FLoss:
		f.loss++
		f.begin(k, fmt.Sprintf("p=%.2f", f.pLoss), length, func() { f.loss-- })
	case FDup:
		f.dup++
		f.begin(k, fmt.Sprintf("p=%.2f", f.pDup), length, func() { f.dup-- })
	case FReorder:
		f.reorder++
		f.begin(k, "", length, func() { f.reorder-- })
	}
}

func (f *faults) worker(k FaultKind, w *worker, length Time) {
	if w.dead || w.hung || w.state != "up" {
		return
	}
	switch k {
	case FWorkerCrash:
		w.crash()
		f.begin(k, w.id, length, w.start)
	case FWorkerRestart:
		w.crash()
		f.begin(k, w.id, f.s.pick(span{0, 100 * Millisecond}), w.start)
	case FWorkerHang:
		w.hang()
		f.begin(k, w.id, length, w.resume)
	case FWorkerSlow:
		if w.slow > 1 {
			return
		}
		w.setSlow(float64(2 + f.s.rng.IntN(8)))
		f.begin(k, fmt.Sprintf("%s x%.0f", w.id, w.slow), length, func() { w.setSlow(1) })
	case FWorker500:
		if w.fail500 {
			return
		}
		w.fail500 = true
		f.begin(k, w.id, length, func() { w.fail500 = false })
	case FWorkerDrain:
		w.drain()
		f.begin(k, w.id, length, func() {
			if w.dead {
				w.start()
			} else {
				w.comeBack = true
			}
		})
	}
}

// split puts every broker and node on one of two sides, at random.
func (f *faults) split(length Time) {
	s := f.s
	if f.splitOn {
		return
	}
	f.splitOn = true
	var names []string
	set := func(name string, side *int) {
		*side = s.rng.IntN(2)
		if *side == 1 {
			names = append(names, name)
		}
	}
	for _, b := range s.net.brokers {
		set(fmt.Sprintf("b%d", b.id), &b.side)
	}
	for _, x := range s.net.nodes {
		set(x.name, &x.side)
	}
	sort.Strings(names)
	f.begin(FSplit, "{"+strings.Join(names, ",")+"} from the rest", length, func() {
		f.splitOn = false
		for _, b := range s.net.brokers {
			b.side = 0
		}
		for _, x := range s.net.nodes {
			x.side = 0
		}
	})
}
