package dashboard

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// buckets is a latency histogram's cumulative counts at one moment: counts[i]
// requests took at most bounds[i] seconds, and total is every request,
// those beyond the last bound too.
type buckets struct {
	bounds []float64
	counts []uint64
	total  uint64
}

// gatherLatency sums every series of the histogram family name that g
// exports into one set of buckets; series whose bounds differ from the
// first one's are left out. ok is false when g has no such histogram.
func gatherLatency(g prometheus.Gatherer, name string) (b buckets, ok bool) {
	mfs, err := g.Gather()
	if err != nil && len(mfs) == 0 {
		return buckets{}, false
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			bs := h.GetBucket()
			if !ok {
				b.bounds = make([]float64, len(bs))
				b.counts = make([]uint64, len(bs))
				for i, x := range bs {
					b.bounds[i] = x.GetUpperBound()
				}
				ok = true
			}
			if len(bs) != len(b.bounds) {
				continue
			}
			same := true
			for i, x := range bs {
				same = same && x.GetUpperBound() == b.bounds[i]
			}
			if !same {
				continue
			}
			for i, x := range bs {
				b.counts[i] += x.GetCumulativeCount()
			}
			b.total += h.GetSampleCount()
		}
	}
	return b, ok
}

// since returns the requests counted in b and not yet in old: the
// histogram of the time between the two samples. A counter that went
// back (a restarted registry) gives an empty histogram.
func (b buckets) since(old buckets) buckets {
	if len(old.counts) != len(b.counts) || old.total > b.total {
		return buckets{bounds: b.bounds, counts: make([]uint64, len(b.counts))}
	}
	d := buckets{bounds: b.bounds, counts: make([]uint64, len(b.counts)), total: b.total - old.total}
	for i := range b.counts {
		if old.counts[i] > b.counts[i] {
			return buckets{bounds: b.bounds, counts: make([]uint64, len(b.counts))}
		}
		d.counts[i] = b.counts[i] - old.counts[i]
	}
	return d
}

// quantile estimates the q-quantile (0 < q < 1) in seconds, interpolating
// linearly inside the bucket it falls in, as Prometheus's
// histogram_quantile does; the first bucket starts at 0, and a quantile
// beyond the last bound is that bound. NaN when b counts no request.
func (b buckets) quantile(q float64) float64 {
	if b.total == 0 || len(b.bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(b.total)
	for i, c := range b.counts {
		if float64(c) < rank {
			continue
		}
		lo, below := 0.0, uint64(0)
		if i > 0 {
			lo, below = b.bounds[i-1], b.counts[i-1]
		}
		hi := b.bounds[i]
		if math.IsInf(hi, 1) {
			return lo
		}
		in := c - below
		if in == 0 {
			return hi
		}
		return lo + (hi-lo)*(rank-float64(below))/float64(in)
	}
	return b.bounds[len(b.bounds)-1]
}
