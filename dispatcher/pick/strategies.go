package pick

import (
	"sync/atomic"
)

// roundRobin is an atomic counter over the workers: consecutive picks land
// on consecutive workers, each tried at most once per pick. A worker's
// turn passes to the next when it has no free slot or its weight thins it
// out (its slots shrink with its weight too, so that a slow worker's
// probes do not pile up on it while the others are full); when every turn
// passes, the less loaded for its slots and weight of two drawn at
// random wins.
type roundRobin[W Worker] struct {
	base[W]
	n atomic.Uint64
}

func (*roundRobin[W]) Name() string { return RoundRobin }

func (r *roundRobin[W]) Pick(ws []W, skip func(W) bool, _ int64) int {
	n := uint64(len(ws))
	if n == 0 {
		return -1
	}
	start := r.n.Add(1) - 1
	var passed uint64
	for i := range n {
		k := start + i
		x := int(k % n)
		w := ws[x]
		if skip != nil && skip(w) {
			continue // tried by this request: the others' turns are unchanged
		}
		s := w.Stats()
		weight := s.turnWeight()
		if w.Pending() < slots(s, weight) && takesTurn(k/n, weight) {
			// A turn passed is spent, so that it does not fall to the
			// next worker as an extra one.
			r.n.Add(passed)
			return x
		}
		passed++
	}
	// Every turn passed: the less loaded of two drawn at random, not the
	// least loaded of all, which would send every request to the worker
	// whose replies came in last, in bursts.
	i, j := r.draw(ws, skip)
	if j >= 0 && load(ws[j], ws[j].Stats().turnWeight()) < load(ws[i], ws[i].Stats().turnWeight()) {
		return j
	}
	return i
}

// takesTurn tells whether a worker of weight takes its turn in cycle c:
// weight of every weightOne turns, evenly spread; every turn at full
// weight.
func takesTurn(c uint64, weight uint32) bool {
	if weight >= weightOne {
		return true
	}
	w := uint64(weight)
	return (c+1)*w/weightOne != c*w/weightOne
}

// peakEWMA is the power of two choices over the peak EWMA of each
// worker's latency × (pending + 1), over its health (errors, ramp).
type peakEWMA[W Worker] struct{ base[W] }

func (*peakEWMA[W]) Name() string { return PeakEWMA }

func (p *peakEWMA[W]) Pick(ws []W, skip func(W) bool, now int64) int {
	i, j := p.draw(ws, skip)
	if j < 0 {
		return i
	}
	if p.cost(ws[j], now) < p.cost(ws[i], now) {
		return j
	}
	return i
}

// cost is w's peak latency × (pending + 1) over its health; a worker
// never heard from costs the fleet's median.
func (p *peakEWMA[W]) cost(w W, now int64) float64 {
	s := w.Stats()
	peak := s.peak.decayed(now)
	if s.peak.at.Load() == 0 {
		peak = p.medianPeak
	}
	peak = max(peak, 1)
	return peak * float64(w.Pending()+1) * weightOne / float64(s.healthWeight())
}

// leastInflight is the power of two choices on pending alone: it avoids
// both herding onto one idle worker and piling onto a slow one.
type leastInflight[W Worker] struct{ base[W] }

func (*leastInflight[W]) Name() string { return LeastInflight }

func (l *leastInflight[W]) Pick(ws []W, skip func(W) bool, _ int64) int {
	i, j := l.draw(ws, skip)
	if j < 0 {
		return i
	}
	if ws[j].Pending() < ws[i].Pending() {
		return j
	}
	return i
}
