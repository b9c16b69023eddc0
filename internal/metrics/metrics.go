// Package metrics serves the Prometheus metrics of the roles a process
// runs (--metrics ADDR) on one HTTP endpoint, /metrics.
package metrics

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics until Close.
type Server struct {
	srv  *http.Server
	addr string
	done chan struct{}
}

// Serve listens on addr ("host:port"; port 0 picks a free one) and serves
// on /metrics what gs gather, with the Go runtime's and the process's
// figures (go_*, process_*). A role whose metrics fail to gather does not
// hide the others': the error goes to the scraper, the rest is served.
func Serve(addr string, gs ...prometheus.Gatherer) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	proc := prometheus.NewRegistry()
	proc.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	all := append(prometheus.Gatherers{proc}, gs...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(all, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		// ErrServerClosed after Close; any other error is the listener's
		// failure, which a scraper sees as the endpoint gone.
		_ = s.srv.Serve(ln)
	}()
	return s, nil
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
