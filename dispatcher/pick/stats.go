package pick

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Stats are one worker's figures: its replies' latency and errors, which
// the caller records with Observe, its announced concurrency, when it came
// back into rotation, and the weight and verdict Refresh derived from
// them. The zero value is a worker never heard from, at full weight.
type Stats struct {
	conc   atomic.Int64 // announced concurrency; 0 = unknown
	backAt atomic.Int64 // unix ns it came back into rotation; 0 = no ramp

	mu   sync.Mutex    // serializes Observe's writes; readers load atomics
	n    atomic.Uint64 // replies observed
	lat  ewma          // successes' latency, ns
	peak ewma          // peak EWMA of every reply's cost, ns
	errs ewma          // error rate, 0..1

	weight  atomic.Uint32 // of its turns it takes, in 1/weightOne; 0 = not set: all
	health  atomic.Uint32 // the weight but for speed: errors and ramp
	verdict atomic.Uint32

	told   Verdict // the verdict last told (OnVerdict); Refresh's
	toldAt int64
}

// weightOne is a full weight; the least is 1, a probe now and then.
const weightOne = 1024

// The figures' time constants: a reply's weight in an EWMA is 1 −
// exp(−Δt/τ) for Δt since the previous one, and at least minAlpha, so
// that a busy worker's figures still move within tens of replies.
const (
	latencyTau = time.Second
	errorTau   = time.Second
	peakTau    = 10 * time.Second // Finagle's and Linkerd's decay
	minAlpha   = 1.0 / 16
)

// FailureCost is what a failed reply (a 5xx or a timeout) costs in the
// peak EWMA at least: like a slow reply, so that a worker that fails
// fast does not look fast.
const FailureCost = time.Second

// ewma is an exponentially weighted moving average in time. Written under
// Stats.mu; v and at are loaded without it.
type ewma struct {
	v  atomic.Uint64 // float64 bits
	at atomic.Int64  // unix ns of the last sample; 0 = none
}

func (e *ewma) value() float64 { return math.Float64frombits(e.v.Load()) }

// alpha is the weight of a sample at now, tau after the previous one.
func (e *ewma) alpha(now int64, tau time.Duration, floor float64) float64 {
	last := e.at.Load()
	if last == 0 {
		return 1
	}
	a := 1 - math.Exp(-float64(max(now-last, 0))/float64(tau))
	return max(a, floor)
}

func (e *ewma) set(now int64, v float64) {
	e.v.Store(math.Float64bits(v))
	e.at.Store(now)
}

func (e *ewma) add(now int64, x float64, tau time.Duration) {
	a := e.alpha(now, tau, minAlpha)
	e.set(now, e.value()+a*(x-e.value()))
}

// decayed is the peak EWMA at now: it decays toward zero with no sample,
// so that a worker once slow is tried again in time (Finagle).
func (e *ewma) decayed(now int64) float64 {
	last := e.at.Load()
	if last == 0 {
		return 0
	}
	return e.value() * math.Exp(-float64(max(now-last, 0))/float64(peakTau))
}

// Observe records a reply at now, latency after its attempt was sent;
// failed: a 5xx or a timeout. It is the one place figures are written.
func (s *Stats) Observe(now int64, latency time.Duration, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n.Add(1)
	x := float64(latency)
	fail := 0.0
	if failed {
		fail = 1
		x = max(x, float64(FailureCost))
	} else {
		s.lat.add(now, x, latencyTau)
	}
	s.errs.add(now, fail, errorTau)
	// Peak: a slower reply is taken at once, a faster one smoothed in.
	if cur := s.peak.decayed(now); x > cur {
		s.peak.set(now, x)
	} else {
		a := s.peak.alpha(now, peakTau, 0)
		s.peak.set(now, cur+a*(x-cur))
	}
}

// SetConcurrency records the concurrency the worker announces; 0 =
// unknown, no bound on its slots.
func (s *Stats) SetConcurrency(n int) {
	if int64(n) != s.conc.Load() {
		s.conc.Store(int64(n))
	}
}

// Back records that the worker came back into rotation at now: it ramps
// up to its share over the slow start. now 0 means no ramp (a fleet
// starting together).
func (s *Stats) Back(now int64) { s.backAt.Store(now) }

// Figures are a worker's figures as shown to operators.
type Figures struct {
	Latency   time.Duration // EWMA of its successes' latency; 0 = none yet
	Peak      time.Duration // peak EWMA of its replies' cost, decayed to now
	ErrorRate float64       // EWMA of its replies that failed, 0..1
	Weight    float64       // the share of its turns it takes, 0..1
	Verdict   Verdict       // why it takes less, if it does
}

// Figures returns s's figures at now.
func (s *Stats) Figures(now int64) Figures {
	return Figures{
		Latency:   time.Duration(s.lat.value()),
		Peak:      time.Duration(s.peak.decayed(now)),
		ErrorRate: s.errs.value(),
		Weight:    float64(s.turnWeight()) / weightOne,
		Verdict:   Verdict(s.verdict.Load()),
	}
}

// turnWeight is the weight, a full one when never set.
func (s *Stats) turnWeight() uint32 {
	if w := s.weight.Load(); w > 0 {
		return w
	}
	return weightOne
}

func (s *Stats) healthWeight() uint32 {
	if w := s.health.Load(); w > 0 {
		return w
	}
	return weightOne
}
