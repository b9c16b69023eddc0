// Package metrics serves the Prometheus metrics of the roles a process
// runs (--metrics ADDR) on one HTTP endpoint, /metrics.
package metrics

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
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

// ErrInsecure reports an endpoint that would listen beyond loopback
// without a token, which ServeAuth refuses unless Auth.Insecure says so.
var ErrInsecure = errors.New("metrics: listening beyond loopback without a token")

// Auth is what the endpoint asks of a scraper.
type Auth struct {
	// Token, when set, is required as "Authorization: Bearer <Token>"
	// (Prometheus: authorization.credentials_file); "" means none, which
	// ServeAuth refuses beyond loopback unless Insecure.
	Token    string
	Insecure bool
}

// Serve is ServeAuth without a token: on loopback only.
func Serve(addr string, gs ...prometheus.Gatherer) (*Server, error) {
	return ServeAuth(addr, Auth{}, gs...)
}

// ServeAuth listens on addr ("host:port"; port 0 picks a free one) and
// serves on /metrics what gs gather, and what Add adds later, with the Go
// runtime's and the process's figures (go_*, process_*), to scrapers
// that bring a's token. A role whose metrics fail to gather does not hide
// the others': the error goes to the scraper, the rest is served.
func ServeAuth(addr string, a Auth, gs ...prometheus.Gatherer) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: address %q is not host:port", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) && a.Token == "" && !a.Insecure {
		return nil, fmt.Errorf("%w: %s", ErrInsecure, addr)
	}
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
	mux.Handle("/metrics", bearer(a.Token, promhttp.HandlerFor(all, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})))
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

// bearer lets through only requests with "Authorization: Bearer <token>";
// an empty token lets everything through.
func bearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bilancia metrics"`)
			http.Error(w, "metrics: missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
