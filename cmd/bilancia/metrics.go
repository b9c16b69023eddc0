package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/internal/metrics"
)

// startMetrics serves --metrics on addr, and says where, before the roles
// start: a bad or taken address stops the command before it changes
// anything; beyond loopback only with f's token, or its --metrics-insecure. The roles' metrics are added as they start (Add). With addr
// empty it serves nothing and returns nil, which Add and stopMetrics take.
func startMetrics(addr string, f *MetricsAuthFlags) (*metrics.Server, error) {
	if addr == "" {
		return nil, nil
	}
	a, err := f.auth()
	if err != nil {
		return nil, err
	}
	s, err := metrics.ServeAuth(addr, a)
	if errors.Is(err, metrics.ErrInsecure) {
		return nil, fmt.Errorf("%w: give it --metrics-token-file FILE (docs/auth.md), listen on 127.0.0.1, or add --metrics-insecure", err)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "metrics on %s\n", s.URL())
	return s, nil
}

// stopMetrics stops serving s, giving a scrape in progress a second.
func stopMetrics(s *metrics.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.Close(ctx)
}

// gatherers are the metrics of the roles a process runs, each nil when
// it does not run it: one endpoint serves them all.
func gatherers(b *broker.Broker, d *runningDispatcher, wm *calcworker.Metrics) []prometheus.Gatherer {
	var gs []prometheus.Gatherer
	if b != nil {
		gs = append(gs, metrics.Registry(b.Collector()))
	}
	if d != nil {
		gs = append(gs, d.Registry())
	}
	if wm != nil {
		gs = append(gs, wm.Registry())
	}
	return gs
}
