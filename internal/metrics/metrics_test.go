package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
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

// TestServeAuth: beyond loopback the endpoint needs a token, or
// Insecure; with a token, a scrape without it is refused.
func TestServeAuth(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		if s, err := metrics.Serve(addr); !errors.Is(err, metrics.ErrInsecure) {
			_ = s.Close(context.Background())
			t.Errorf("Serve(%s) = %v; want %v", addr, err, metrics.ErrInsecure)
		}
	}
	open, err := metrics.ServeAuth("0.0.0.0:0", metrics.Auth{Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = open.Close(context.Background())
	s, err := metrics.ServeAuth("0.0.0.0:0", metrics.Auth{Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	url := "http://127.0.0.1:" + s.Addr()[strings.LastIndex(s.Addr(), ":")+1:] + "/metrics"
	for _, tc := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusUnauthorized}, {"Bearer s3cret-token", http.StatusOK}} {
		req, _ := http.NewRequest("GET", url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET with %q = %d; want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
}
