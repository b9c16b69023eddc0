package dispatcher

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// Strategy names.
const (
	RoundRobin    = "round-robin"
	LeastInflight = "least-inflight"
)

// picker chooses a worker from the live snapshot, skipping those for which
// skip returns true. It returns nil when none is left: callers say "none"
// explicitly rather than loop.
type picker interface {
	pick(live []*member, skip func(*member) bool) *member
}

func newPicker(strategy string) (picker, error) {
	switch strategy {
	case "", RoundRobin:
		return &roundRobin{}, nil
	case LeastInflight:
		return leastInflight{}, nil
	}
	return nil, fmt.Errorf("dispatcher: unknown strategy %q (want %s or %s)", strategy, RoundRobin, LeastInflight)
}

// roundRobin is an atomic counter over the snapshot: consecutive picks land
// on consecutive workers, and each entry is tried at most once per pick.
type roundRobin struct{ n atomic.Uint64 }

func (r *roundRobin) pick(live []*member, skip func(*member) bool) *member {
	n := uint64(len(live))
	if n == 0 {
		return nil
	}
	start := r.n.Add(1) - 1
	for i := range n {
		w := live[(start+i)%n]
		if skip == nil || !skip(w) {
			return w
		}
	}
	return nil
}

// leastInflight is the power of two choices on this dispatcher's in-flight
// count per worker: two random candidates, the less busy wins. It avoids
// both herding onto one idle worker and piling onto a slow one.
type leastInflight struct{}

func (leastInflight) pick(live []*member, skip func(*member) bool) *member {
	n := len(live)
	switch n {
	case 0:
		return nil
	case 1:
		if skip == nil || !skip(live[0]) {
			return live[0]
		}
		return nil
	}
	i := rand.N(n)
	j := rand.N(n - 1)
	if j >= i {
		j++
	}
	a, b := live[i], live[j]
	if skip != nil {
		sa, sb := skip(a), skip(b)
		switch {
		case sa && sb:
			// Both tried already: fall back to a scan for any other.
			for k := range n {
				if w := live[(i+k)%n]; !skip(w) {
					return w
				}
			}
			return nil
		case sa:
			return b
		case sb:
			return a
		}
	}
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}
