package metrics_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/internal/metrics"
	"github.com/bilancia/bilancia/internal/metrics/metricstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServeThenAdd: the endpoint serves the process's figures from the
// start and a role's once added; closed, it serves nothing.
func TestServeThenAdd(t *testing.T) {
	s, err := metrics.Serve("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := metricstest.Scrape(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Value("go_goroutines"); !ok {
		t.Error("no go_goroutines before any role")
	}
	if _, ok := f.Value("bilancia_test_requests_total"); ok {
		t.Error("a role's metric before it was added")
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "bilancia_test_requests_total", Help: "h"})
	c.Add(3)
	s.Add(metrics.Registry(c))
	if f, err = metricstest.Scrape(s.URL()); err != nil {
		t.Fatal(err)
	}
	if got, ok := f.Value("bilancia_test_requests_total"); !ok || got != 3 {
		t.Errorf("bilancia_test_requests_total = %v (found: %v); want 3", got, ok)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := metricstest.Scrape(s.URL()); err == nil {
		t.Error("scraped after Close")
	}
	var none *metrics.Server // no --metrics
	none.Add(metrics.Registry(c))
	if err := none.Close(context.Background()); err != nil {
		t.Errorf("nil Close = %v", err)
	}
	if _, err := metrics.Serve("127.0.0.1:99999"); err == nil {
		t.Error("Serve on port 99999: want an error")
	}
}
