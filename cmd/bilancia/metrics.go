package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/internal/metrics"
)

// serveMetrics serves what gs gather on addr (--metrics) until stop is
// called, and says where; with addr empty it serves nothing.
func serveMetrics(addr string, gs ...prometheus.Gatherer) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	s, err := metrics.Serve(addr, gs...)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "metrics on %s\n", s.URL())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Close(ctx)
	}, nil
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
