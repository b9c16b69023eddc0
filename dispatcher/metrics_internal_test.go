package dispatcher

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/wire"
)

// TestLatencyBuckets: an answer lands in the bucket of the first bound
// it does not exceed (Prometheus's le), under its status.
func TestLatencyBuckets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		code      int
		d         time.Duration
		status, b int
	}{
		{"fast 200", 0, 10 * time.Microsecond, 0, 0},
		{"on a bound", 0, 100 * time.Microsecond, 0, 0},
		{"just past a bound", 0, 100*time.Microsecond + 1, 0, 1},
		{"400", wire.CodeBadRequest, time.Millisecond, 1, 3},
		{"504 past the last bound", wire.CodeDeadline, 2 * time.Minute, 5, len(latencyBounds)},
		{"unknown code", 418, time.Second, otherStatus, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l latencies
			l.observe(tc.code, tc.d)
			for s := range l.buckets {
				for b := range l.buckets[s] {
					want := uint64(0)
					if s == tc.status && b == tc.b {
						want = 1
					}
					if got := l.buckets[s][b].Load(); got != want {
						t.Errorf("buckets[%d][%d] = %d; want %d", s, b, got, want)
					}
				}
			}
			if got := time.Duration(l.sum.Load()); got != tc.d {
				t.Errorf("sum = %v; want %v", got, tc.d)
			}
		})
	}
}

// BenchmarkLatencyObserve is what metrics add to each answer, beside what
// a prometheus.Histogram and a counter by status would.
func BenchmarkLatencyObserve(b *testing.B) {
	ds := []time.Duration{80 * time.Microsecond, 300 * time.Microsecond, 2 * time.Millisecond, 40 * time.Millisecond}
	b.Run("latencies", func(b *testing.B) {
		b.ReportAllocs()
		var l latencies
		for i := 0; b.Loop(); i++ {
			l.observe(0, ds[i&3])
		}
	})
	b.Run("prometheus", func(b *testing.B) {
		b.ReportAllocs()
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Buckets: prometheus.DefBuckets})
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"status"}).WithLabelValues("200")
		for i := 0; b.Loop(); i++ {
			h.Observe(ds[i&3].Seconds())
			c.Inc()
		}
	})
}
