package dashboard

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
)

// ErrInsecure reports a page that would listen beyond loopback without
// authentication of its own, which Start refuses unless Config.Insecure
// says so: a broker's credentials do not protect it, and whoever reaches
// it can drain workers.
var ErrInsecure = errors.New("dashboard: listening beyond loopback without authentication")

// tokenCookie holds Config.Token in the browser once the page was opened
// with ?token=: the page's event stream and buttons send it back.
const tokenCookie = "bilancia_dashboard"

// DefaultMaxPagesPerAddr bounds the pages watching from one remote
// address, so that one host cannot take every stream (MaxPages).
const DefaultMaxPagesPerAddr = 8

// Check tells whether Start would refuse cfg's address and
// authentication (ErrInsecure, a bad address or TLS file), without
// listening: a command checks its flags before it starts anything.
func Check(cfg Config) error {
	addr, err := listenAddr(cfg.Addr)
	if err == nil {
		_, err = secure(&cfg, addr)
	}
	return err
}

// secure checks that cfg may listen on addr, and returns the TLS
// configuration of its listener, nil for plain HTTP.
func secure(cfg *Config, addr string) (*tls.Config, error) {
	if cfg.TLSCA != "" && cfg.TLSCert == "" {
		return nil, errors.New("dashboard: a TLS CA for clients needs the page's TLS certificate and key")
	}
	host, _, _ := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	loopback := host == "localhost" || ip != nil && ip.IsLoopback()
	if !loopback && cfg.Token == "" && cfg.TLSCA == "" && !cfg.Insecure {
		return nil, fmt.Errorf("%w: %s", ErrInsecure, addr)
	}
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("dashboard: tls: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("dashboard: tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("dashboard: tls: no certificate in %s", cfg.TLSCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// requireToken lets through only requests that bring the token: the
// cookie, or "Authorization: Bearer <token>" (scripts). A page opened
// with ?token=<token> gets the cookie and is sent on without it in its
// address.
func (s *Server) requireToken(h http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return h
	}
	want := []byte(s.cfg.Token)
	match := func(got string) bool { return got != "" && subtle.ConstantTimeCompare([]byte(got), want) == 1 }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); q.Has("token") {
			if !match(q.Get("token")) {
				http.Error(w, "dashboard: wrong token", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.cfg.Token, Path: "/", HttpOnly: true,
				Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		c, err := r.Cookie(tokenCookie)
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if (err != nil || !match(c.Value)) && !match(bearer) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bilancia dashboard"`)
			http.Error(w, "dashboard: open it as /?token=<the token file's content>", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// perAddr counts the event streams open from each remote address.
type perAddr struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// join counts a stream from r's address, false if it has max already.
func (p *perAddr) join(r *http.Request) (string, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[host] >= p.max {
		return host, false
	}
	p.n[host]++
	return host, true
}

func (p *perAddr) leave(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[host]--; p.n[host] <= 0 {
		delete(p.n, host)
	}
}
