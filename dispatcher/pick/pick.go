// Package pick chooses the worker for a request's next attempt: workers'
// figures in, a choice out. It does no I/O, reads no clock and owns no
// goroutine: the time is passed in, the random source is the caller's,
// and the figures are written by the caller's reply path (Stats.Observe).
//
// Three strategies:
//
//   - RoundRobin, the default, keeps the exact cyclic order among equal,
//     healthy workers, and sees load: a worker's turn is taken only while
//     it has a free slot (pending below its announced concurrency, scaled
//     by its weight) and its weight lets it (weights thin a worker's
//     turns); when no worker in the cycle may take it, the less loaded
//     for its slots and weight of two drawn at random takes it. A worker's weight falls when it is slow against the fleet's
//     median latency, when it fails, and while it ramps back (slow start).
//   - PeakEWMA, opt-in: the power of two choices over the peak EWMA of
//     latency × (pending + 1), as Finagle and Linkerd do, a failure
//     costing like a slow reply, and divided by the slow-start ramp.
//   - LeastInflight: the power of two choices over pending alone.
//
// A caller calls Refresh (cheap when not due) and Pick from one goroutine
// at a time; Stats are safe for concurrent use.
package pick

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Strategy names.
const (
	RoundRobin    = "round-robin"
	PeakEWMA      = "peak-ewma"
	LeastInflight = "least-inflight"
)

// Strategies are the names New knows, the default first.
var Strategies = []string{RoundRobin, PeakEWMA, LeastInflight}

// ErrStrategy is New's answer to a name it does not know.
var ErrStrategy = errors.New("pick: unknown strategy")

// Worker is what a picker reads of a worker.
type Worker interface {
	// Pending is how many attempts the caller has in flight on it.
	Pending() int64
	// Stats are its figures, which the caller keeps with the worker.
	Stats() *Stats
}

// Picker chooses among workers.
type Picker[W Worker] interface {
	// Pick returns the index in ws of the worker for the next attempt at
	// now (unix nanoseconds), never one for which skip (nil: none) says
	// true, or -1 when none is left.
	Pick(ws []W, skip func(W) bool, now int64) int
	// Refresh recomputes the fleet's figures and the workers' weights and
	// verdicts from ws, the workers in rotation, when they are older than
	// RefreshEvery; it calls Config.OnVerdict for each worker whose
	// verdict changed and may be told.
	Refresh(ws []W, now int64)
	// Name is the strategy's.
	Name() string
}

// Config tunes a picker. Zero values mean the defaults each comment gives.
type Config[W Worker] struct {
	// SlowStart is how long a worker back in rotation (Stats.Back) takes
	// to ramp from a tenth of its share to all of it. 0 = 5s; <0 = no ramp.
	SlowStart time.Duration
	// Rand is the random source of the strategies that draw. nil = a
	// source seeded from the runtime's.
	Rand rand.Source
	// OnVerdict, if set, hears a worker's change of verdict, with the
	// figures that made it, at most once per TellEvery per worker. It is
	// called from Refresh.
	OnVerdict func(w W, from, to Verdict, why string)
}

// RefreshEvery is how stale the fleet's figures may get.
const RefreshEvery = 10 * time.Millisecond

// TellEvery bounds how often a worker's verdict changes are told.
const TellEvery = time.Second

// New returns the picker of strategy ("" = RoundRobin).
func New[W Worker](strategy string, cfg Config[W]) (Picker[W], error) {
	if cfg.SlowStart == 0 {
		cfg.SlowStart = 5 * time.Second
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.NewPCG(rand.Uint64(), rand.Uint64())
	}
	b := base[W]{cfg: cfg, rnd: rand.New(cfg.Rand)}
	switch strategy {
	case "", RoundRobin:
		return &roundRobin[W]{base: b}, nil
	case PeakEWMA:
		return &peakEWMA[W]{base: b}, nil
	case LeastInflight:
		return &leastInflight[W]{base: b}, nil
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrStrategy, strategy, Strategies)
}
