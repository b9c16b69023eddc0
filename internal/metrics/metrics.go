// Package metrics serves the Prometheus metrics of the roles a process
// runs (--metrics ADDR) on one HTTP endpoint, /metrics.
package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Server serves /metrics until Close.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{}

	mu sync.Mutex
	gs prometheus.Gatherers // the process's, then the roles' in the order added
}

// Serve listens on addr ("host:port"; port 0 picks a free one) and serves
// on /metrics what gs gather, and what Add adds later, with the Go
// runtime's and the process's figures (go_*, process_*). A role whose
// metrics fail to gather does not hide the others': the error goes to the
// scraper, the rest is served.
func Serve(addr string, gs ...prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	proc := prometheus.NewRegistry()
	proc.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s := &Server{
		addr: ln.Addr().String(),
		done: make(chan struct{}),
		gs:   append(prometheus.Gatherers{proc}, gs...),
	}
	all := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		s.mu.Lock()
		gs := s.gs
		s.mu.Unlock()
		return gs.Gather()
	})
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(all, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		// ErrServerClosed after Close; any other error is the listener's
		// failure, which a scraper sees as the endpoint gone.
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Add serves what gs gather too: a process listens before its roles start,
// so that a bad address stops it before anything else, and adds each
// role's metrics once the role exists. Nothing happens on a nil Server.
func (s *Server) Add(gs ...prometheus.Gatherer) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gs = append(s.gs[:len(s.gs):len(s.gs)], gs...) // a new array: a scrape may hold the old
}

// Addr is the address it listens on, with the port it got.
func (s *Server) Addr() string { return s.addr }

// URL is the metrics' URL.
func (s *Server) URL() string { return "http://" + s.addr + "/metrics" }

// Close stops serving, ends the scrapes in progress within ctx, and waits
// for the server's goroutine. Safe on a nil Server (no --metrics).
func (s *Server) Close(ctx context.Context) error {
	if s == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// Registry returns a new registry of cs, for a role whose metrics are
// collectors.
func Registry(cs ...prometheus.Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(cs...)
	return r
}
