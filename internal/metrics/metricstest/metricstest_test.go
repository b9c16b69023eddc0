package metricstest

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLintCatchesBadNames: the check the roles' tests rely on finds what
// it is there for.
func TestLintCatchesBadNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    prometheus.Collector
		want string // in a problem
	}{
		{"counter without _total", prometheus.NewCounter(prometheus.CounterOpts{Name: "bilancia_test_requests", Help: "h"}), "_total"},
		{"milliseconds", prometheus.NewGauge(prometheus.GaugeOpts{Name: "bilancia_test_latency_milliseconds", Help: "h"}), "base unit"},
		{"camel case", prometheus.NewGauge(prometheus.GaugeOpts{Name: "bilancia_testInflight", Help: "h"}), "camelCase"},
		{"no help", prometheus.NewGauge(prometheus.GaugeOpts{Name: "bilancia_test_inflight"}), "no help"},
		{"_count on a gauge", prometheus.NewGauge(prometheus.GaugeOpts{Name: "bilancia_test_workers_count", Help: "h"}), "_count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(tc.c)
			problems, err := Lint(reg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("Lint = %q; want a problem mentioning %q", problems, tc.want)
			}
		})
	}
	good := prometheus.NewRegistry()
	good.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "bilancia_test_requests_total", Help: "h"}))
	if problems, err := Lint(good); err != nil || len(problems) > 0 {
		t.Errorf("Lint(good) = %q, %v; want none", problems, err)
	}
}

// TestWant: the comparison every role's metrics test relies on fails on
// another value and on a missing sample, and passes on the value.
func TestWant(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bilancia_test_requests_total", Help: "h"}, []string{"status"})
	reg.MustRegister(c)
	c.WithLabelValues("200").Add(3)
	f, err := Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Want(3, "bilancia_test_requests_total", "status", "200"); err != nil {
		t.Errorf("Want(3) = %v; want nil", err)
	}
	if err := f.Want(4, "bilancia_test_requests_total", "status", "200"); err == nil {
		t.Error("Want(4) of a 3 passed")
	}
	if err := f.Want(0, "bilancia_test_requests_total", "status", "500"); err == nil {
		t.Error("Want of a missing sample passed")
	}
}
