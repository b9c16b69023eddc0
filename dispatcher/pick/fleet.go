package pick

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Verdict is why a worker takes less than its share, or that it does not.
type Verdict uint32

// Verdicts, the first that applies winning: Failing, Slow, Saturated,
// Warming, OK.
const (
	OK        Verdict = iota // full share
	Warming                  // ramping up after coming back (slow start)
	Saturated                // pending well above its concurrency and the fleet's mean
	Slow                     // latency an outlier against the fleet's median
	Failing                  // error rate above failTolerance
)

var verdictNames = [...]string{"ok", "warming", "saturated", "slow", "failing"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "unknown"
}

// What makes a verdict, and how much it takes off a worker's weight.
const (
	// slowRatio: a worker whose latency is above this many times the
	// fleet's median is slow; its weight is (slowRatio × median /
	// latency)², so that a worker a hundred times slower takes almost
	// nothing but probes.
	slowRatio = 3
	// latencyFloor: latencies below it count as it, so that noise among
	// fast workers (a pause, a busy machine) makes no outlier.
	latencyFloor = 5 * time.Millisecond
	// minReplies: a worker is judged slow or failing only on at least
	// this many replies, not on its first one.
	minReplies = 8
	// forgiveTau: a slow worker's excess latency over the median fades
	// with this time constant while no reply of its comes, so that one
	// that got well is tried again (probes would take long at its weight).
	forgiveTau = 2 * time.Second
	// failTolerance: an error rate up to it costs nothing; above it the
	// weight falls as ((1 − rate)/(1 − failTolerance))⁴.
	failTolerance = 0.1
	// saturatedFactor: pending above this many times both its concurrency
	// and the fleet's mean pending is saturated.
	saturatedFactor = 2
	// rampFloor is the share a worker back in rotation starts with.
	rampFloor = 0.1
)

// base is what the strategies share: the settings, the random source and
// the fleet's figures.
type base[W Worker] struct {
	cfg         Config[W]
	rnd         *rand.Rand
	refreshedAt int64
	medianLat   float64 // the fleet's median latency, ns, floored; 0 = none known
	medianPeak  float64 // the fleet's median peak cost, ns; 0 = none known
	buf         []float64
}

// Refresh implements Picker.
func (b *base[W]) Refresh(ws []W, now int64) {
	if b.refreshedAt != 0 && now-b.refreshedAt < int64(RefreshEvery) && now >= b.refreshedAt {
		return
	}
	b.refreshedAt = now
	b.medianLat = b.median(ws, func(s *Stats) float64 {
		if s.lat.at.Load() == 0 {
			return -1
		}
		return max(s.lat.value(), float64(latencyFloor))
	})
	b.medianPeak = b.median(ws, func(s *Stats) float64 {
		if s.peak.at.Load() == 0 {
			return -1
		}
		return s.peak.decayed(now)
	})
	var pending int64
	for _, w := range ws {
		pending += w.Pending()
	}
	mean := 0.0
	if len(ws) > 0 {
		mean = float64(pending) / float64(len(ws))
	}
	for _, w := range ws {
		b.judge(w, now, mean)
	}
}

// median is the lower median of f over ws, leaving out negative values;
// 0 when none is left.
func (b *base[W]) median(ws []W, f func(*Stats) float64) float64 {
	b.buf = b.buf[:0]
	for _, w := range ws {
		if v := f(w.Stats()); v >= 0 {
			b.buf = append(b.buf, v)
		}
	}
	if len(b.buf) == 0 {
		return 0
	}
	slices.Sort(b.buf)
	return b.buf[(len(b.buf)-1)/2]
}

// judge sets w's weights and verdict at now, the fleet's mean pending
// being mean, and tells a changed verdict.
func (b *base[W]) judge(w W, now int64, mean float64) {
	s := w.Stats()
	v, why := OK, ""
	health := 1.0

	judged := s.n.Load() >= minReplies
	if e := s.errs.value(); judged && e > failTolerance {
		health *= math.Pow((1-e)/(1-failTolerance), 4)
		v, why = Failing, fmt.Sprintf("error rate %.0f%% of its recent replies", 100*e)
	}
	if r := b.ramp(s, now); r < 1 {
		health *= r
		if v == OK {
			v, why = Warming, fmt.Sprintf("slow start: at %.0f%% of its share", 100*r)
		}
	}
	speed := 1.0
	if lat := b.latency(s, now); judged && b.medianLat > 0 && lat > slowRatio*b.medianLat {
		q := slowRatio * b.medianLat / lat
		speed = q * q
		if v == OK || v == Warming {
			v, why = Slow, fmt.Sprintf("latency %v, %.0f× the fleet's median of %v",
				time.Duration(lat).Round(time.Millisecond/10), lat/b.medianLat, time.Duration(b.medianLat).Round(time.Millisecond/10))
		}
	}
	if p, c := w.Pending(), s.conc.Load(); v == OK && c > 0 &&
		float64(p) > saturatedFactor*float64(c) && float64(p) > saturatedFactor*mean {
		v, why = Saturated, fmt.Sprintf("%d requests pending, its concurrency %d, the fleet's mean %.0f", p, c, mean)
	}
	s.health.Store(toWeight(health))
	s.weight.Store(toWeight(health * speed))
	s.verdict.Store(uint32(v))
	if v != s.told && (s.toldAt == 0 || now-s.toldAt >= int64(TellEvery)) {
		from := s.told
		s.told, s.toldAt = v, now
		if b.cfg.OnVerdict != nil {
			b.cfg.OnVerdict(w, from, v, why)
		}
	}
}

// latency is s's latency as judged at now: its EWMA, floored, its excess
// over the fleet's median fading since its last reply (forgiveTau).
func (b *base[W]) latency(s *Stats, now int64) float64 {
	lat := max(s.lat.value(), float64(latencyFloor))
	if last := s.lat.at.Load(); last != 0 && lat > b.medianLat && b.medianLat > 0 {
		lat = b.medianLat + (lat-b.medianLat)*math.Exp(-float64(max(now-last, 0))/float64(forgiveTau))
	}
	return lat
}

// ramp is the share s takes at now in its slow start, rampFloor to 1.
func (b *base[W]) ramp(s *Stats, now int64) float64 {
	back := s.backAt.Load()
	if back == 0 || b.cfg.SlowStart < 0 {
		return 1
	}
	f := float64(now-back) / float64(b.cfg.SlowStart)
	if f >= 1 {
		return 1
	}
	return max(rampFloor, f)
}

// toWeight turns a share, 0..1, into a weight, 1..weightOne.
func toWeight(share float64) uint32 {
	return uint32(min(max(math.Round(share*weightOne), 1), weightOne))
}

// slots is how many attempts a worker of weight may hold before its turn
// passes: its announced concurrency, scaled by its weight, at least one;
// no bound for a worker at full weight that announces none.
func slots(s *Stats, weight uint32) int64 {
	c := s.conc.Load()
	switch {
	case weight >= weightOne && c > 0:
		return c
	case weight >= weightOne:
		return math.MaxInt64
	}
	return max(1, c*int64(weight)/weightOne)
}

// load is how full w would be with one more attempt: its pending and the
// new one over its slots and its weight. Its own latency counts only
// through its weight, when it is an outlier: among workers of about the
// same speed, an EWMA's noise would herd the requests from one to another.
func load[W Worker](w W, weight uint32) float64 {
	c := max(w.Stats().conc.Load(), 1)
	return float64(w.Pending()+1) / float64(c) * weightOne / float64(weight)
}

// draw returns two distinct indices of ws, neither skipped when there are
// such, or one (j = -1) when only one is left, or -1, -1.
func (b *base[W]) draw(ws []W, skip func(W) bool) (i, j int) {
	n := len(ws)
	switch n {
	case 0:
		return -1, -1
	case 1:
		if skip == nil || !skip(ws[0]) {
			return 0, -1
		}
		return -1, -1
	}
	i = b.rnd.IntN(n)
	j = b.rnd.IntN(n - 1)
	if j >= i {
		j++
	}
	if skip == nil {
		return i, j
	}
	si, sj := skip(ws[i]), skip(ws[j])
	switch {
	case si && sj:
		// Both tried already: any other, scanning from i.
		for k := range n {
			if x := (i + k) % n; !skip(ws[x]) {
				return x, -1
			}
		}
		return -1, -1
	case si:
		return j, -1
	case sj:
		return i, -1
	}
	return i, j
}
