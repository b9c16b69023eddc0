package dashboard

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestQuantile(t *testing.T) {
	b := buckets{bounds: []float64{0.001, 0.01, 0.1, math.Inf(1)}}
	tests := []struct {
		name   string
		counts []uint64
		total  uint64
		q      float64
		want   float64
	}{
		{"empty", []uint64{0, 0, 0, 0}, 0, 0.5, math.NaN()},
		{"all in the first bucket", []uint64{10, 10, 10, 10}, 10, 0.5, 0.0005},
		{"middle of the second", []uint64{0, 10, 10, 10}, 10, 0.5, 0.0055},
		{"p99 in the third", []uint64{50, 90, 100, 100}, 100, 0.99, 0.091},
		{"beyond the last bound", []uint64{0, 0, 0, 10}, 10, 0.5, 0.1},
		{"on a bucket's edge", []uint64{5, 10, 10, 10}, 10, 0.5, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := b
			b.counts, b.total = tt.counts, tt.total
			got := b.quantile(tt.q)
			if math.IsNaN(tt.want) != math.IsNaN(got) || !math.IsNaN(got) && math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v; want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestSince(t *testing.T) {
	bounds := []float64{0.01, math.Inf(1)}
	old := buckets{bounds: bounds, counts: []uint64{3, 5}, total: 5}
	now := buckets{bounds: bounds, counts: []uint64{13, 25}, total: 25}
	d := now.since(old)
	if d.total != 20 || d.counts[0] != 10 || d.counts[1] != 20 {
		t.Errorf("since = %+v; want total 20, counts [10 20]", d)
	}
	if d := old.since(now); d.total != 0 || d.counts[0] != 0 {
		t.Errorf("since of a counter that went back = %+v; want empty", d)
	}
	if d := now.since(buckets{}); d.total != 0 {
		t.Errorf("since of no sample = %+v; want empty", d)
	}
}

// TestGatherLatency reads a real registry: the series of one histogram,
// told apart by a label, are summed; other metrics are ignored.
func TestGatherLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lat_seconds", Buckets: []float64{0.001, 0.01}}, []string{"status"})
	reg.MustRegister(h, prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total"}))
	if _, ok := gatherLatency(reg, "lat_seconds"); ok {
		t.Fatal("gatherLatency found a histogram without series")
	}
	h.WithLabelValues("200").Observe(0.0005)
	h.WithLabelValues("200").Observe(0.005)
	h.WithLabelValues("503").Observe(0.5)
	b, ok := gatherLatency(reg, "lat_seconds")
	if !ok {
		t.Fatal("gatherLatency did not find lat_seconds")
	}
	if b.total != 3 || len(b.counts) != 2 || b.counts[0] != 1 || b.counts[1] != 2 {
		t.Errorf("gatherLatency = %+v; want total 3, counts [1 2]", b)
	}
	if got := b.quantile(0.99); got != 0.01 {
		t.Errorf("p99 = %v; want 0.01 (the last bound)", got)
	}
	if _, ok := gatherLatency(reg, "missing_seconds"); ok {
		t.Error("gatherLatency found a missing histogram")
	}
}
