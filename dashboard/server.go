// Package dashboard serves a dispatcher's live web page: its worker table,
// request rate and latency charts, the cluster's dispatchers, and buttons
// that drain and resume workers. The page and its script are embedded in
// the binary (no CDN, no build step) and follow the dispatcher through
// server-sent events.
//
// On loopback the page needs no authentication; beyond it, Start refuses
// to listen without a token (Config.Token) or client certificates
// (Config.TLSCA) unless Config.Insecure. It refuses cross-site requests
// and foreign Host names (routes.go), and bounds the event streams of
// each remote address.
package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bilancia/bilancia/wire"
)

// Source is the dispatcher the page shows: *dispatcher.Dispatcher.
type Source interface {
	Status() wire.Status
}

// Controller is a Source that can take a worker out of rotation and put
// it back; the page's drain and resume buttons call it. Without it the
// buttons are hidden and the endpoints answer 501.
type Controller interface {
	Drain(id string) error
	Resume(id string) error
}

// DefaultLatencyMetric is the dispatcher's request duration histogram.
const DefaultLatencyMetric = "bilancia_dispatcher_request_duration_seconds"

// Config configures a dashboard.
type Config struct {
	// Addr is where to listen, host:port. An empty host means 127.0.0.1,
	// not every interface; port 0 picks a free one.
	Addr string
	// Dispatcher is the dispatcher shown; required. If it is also a
	// Controller, the page can drain and resume workers.
	Dispatcher Source
	// Conn and Prefix, when Conn is set, let the page list every
	// dispatcher answering on <Prefix>.status; nil: only this one.
	Conn   *nats.Conn
	Prefix string
	// Gatherer, when set, exports the histogram LatencyMetric ("" =
	// DefaultLatencyMetric), from which the page charts p50 and p99;
	// nil: no latency chart.
	Gatherer      prometheus.Gatherer
	LatencyMetric string
	// Interval is how often the page is updated; 0 = 1s.
	Interval time.Duration
	// Window is the time each latency percentile is computed over; 0 =
	// 10 intervals.
	Window time.Duration
	// History is how many points the charts keep; 0 = 300 (5 minutes at
	// one a second).
	History int
	// MaxRows bounds the worker rows sent to the page; 0 = 2000. Beyond
	// it the page shows the workers not up first, then by id.
	MaxRows int
	// MaxPages bounds the pages watching at once; 0 = 64. One more is
	// answered 503, and its browser tries again.
	MaxPages int
	// MaxPagesPerAddr bounds those of one remote address; 0 =
	// DefaultMaxPagesPerAddr.
	MaxPagesPerAddr int

	// Token, when set, is required of every request (auth.go): "" means
	// none, which Start refuses beyond loopback unless TLSCA or Insecure.
	Token string
	// TLSCert and TLSKey serve the page over HTTPS; "" means HTTP. TLSCA
	// also requires browsers' certificates, signed by it.
	TLSCert, TLSKey, TLSCA string
	// Insecure lets the page listen beyond loopback without a token or
	// client certificates; otherwise Start refuses with ErrInsecure.
	Insecure bool
}

// Server is a running dashboard.
type Server struct {
	cfg   Config
	ctl   Controller // nil: no control
	token string     // the page's answer to cross-site requests (control.go)
	ln    net.Listener
	srv   *http.Server
	cl    *cluster // nil without Conn
	hub   *hub
	addrs perAddr // event streams per remote address

	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Start listens on cfg.Addr and serves the dashboard until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Dispatcher == nil {
		return nil, errors.New("dashboard: no dispatcher")
	}
	if cfg.Interval < 0 || cfg.Window < 0 || cfg.History < 0 || cfg.MaxRows < 0 || cfg.MaxPages < 0 || cfg.MaxPagesPerAddr < 0 {
		return nil, errors.New("dashboard: negative interval, window, history, row or page bound")
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.Window == 0 {
		cfg.Window = 10 * cfg.Interval
	}
	if cfg.History == 0 {
		cfg.History = 300
	}
	if cfg.MaxRows == 0 {
		cfg.MaxRows = 2000
	}
	if cfg.MaxPages == 0 {
		cfg.MaxPages = 64
	}
	if cfg.MaxPagesPerAddr == 0 {
		cfg.MaxPagesPerAddr = DefaultMaxPagesPerAddr
	}
	if cfg.LatencyMetric == "" {
		cfg.LatencyMetric = DefaultLatencyMetric
	}
	addr, err := listenAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	tc, err := secure(&cfg, addr)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	s := &Server{cfg: cfg, token: hex.EncodeToString(tok), quit: make(chan struct{})}
	s.addrs = perAddr{max: cfg.MaxPagesPerAddr, n: map[string]int{}}
	s.ctl, _ = cfg.Dispatcher.(Controller)
	s.hub = newHub(&s.cfg, s.ctl != nil)
	if cfg.Conn != nil {
		if s.cl, err = startCluster(cfg.Conn, cfg.Prefix, 2*cfg.Interval); err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		s.hub.cluster = s.cl.list
	}
	s.ln, err = net.Listen("tcp", addr)
	if err != nil {
		if s.cl != nil {
			s.cl.stop()
		}
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	if tc != nil {
		s.ln = tls.NewListener(s.ln, tc)
	}
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(s.ln) // ends with ErrServerClosed at Close
	}()
	go s.run()
	return s, nil
}

// listenAddr checks addr and gives an empty host the loopback address.
func listenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("dashboard: address %q is not host:port (e.g. 127.0.0.1:8222)", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// URL is the page's address, e.g. http://127.0.0.1:8222/ (https with
// TLS), without the token.
func (s *Server) URL() string {
	a := s.ln.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http://"
	if s.cfg.TLSCert != "" {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, fmt.Sprint(a.Port)) + "/"
}

// Addr is the address the page listens on, e.g. [::]:8222.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Loopback tells whether the page is reachable from this machine only.
func (s *Server) Loopback() bool { return s.ln.Addr().(*net.TCPAddr).IP.IsLoopback() }

// run samples the dispatcher every interval and asks the cluster every
// other one, until Close.
func (s *Server) run() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	n := 0
	for {
		if s.cl != nil && n%2 == 0 {
			s.cl.ask(time.Now())
		}
		n++
		lat, ok := s.latency()
		s.hub.tick(time.Now(), s.cfg.Dispatcher.Status(), lat, ok)
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
	}
}

func (s *Server) latency() (buckets, bool) {
	if s.cfg.Gatherer == nil {
		return buckets{}, false
	}
	return gatherLatency(s.cfg.Gatherer, s.cfg.LatencyMetric)
}

// Close stops the page: its event streams end and the listener closes.
// Safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.quit)
		s.hub.close()
		if s.cl != nil {
			s.cl.stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
	})
	return err
}
