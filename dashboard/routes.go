package dashboard

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// tokenHeader carries the page's token on its POST requests. The token is
// written into the page, which another site cannot read; together with
// the browser's Sec-Fetch-Site and Origin headers (http.CrossOriginProtection)
// it keeps a page elsewhere from draining workers through a visitor's
// browser.
const tokenHeader = "X-Bilancia-Token"

func (s *Server) handler() http.Handler {
	static, _ := fs.Sub(assets, "assets")
	index, _ := fs.ReadFile(static, "index.html")
	index = bytes.Replace(index, []byte("{{TOKEN}}"), []byte(s.token), 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(index)
	})
	mux.Handle("GET /app.js", http.FileServerFS(static))
	mux.Handle("GET /style.css", http.FileServerFS(static))
	mux.HandleFunc("GET /events", s.events)
	mux.HandleFunc("POST /api/workers/{id}/drain", s.control(Controller.Drain))
	mux.HandleFunc("POST /api/workers/{id}/resume", s.control(Controller.Resume))
	return s.localHost(s.requireToken(http.NewCrossOriginProtection().Handler(securityHeaders(mux))))
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// localHost refuses requests whose Host is a name other than localhost or
// this machine's: a site whose name an attacker points at 127.0.0.1 (DNS
// rebinding) would otherwise be this page's own origin in a browser.
// Addresses (127.0.0.1, [::1], 10.1.2.3) are always accepted.
func (s *Server) localHost(h http.Handler) http.Handler {
	me, _ := os.Hostname()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		host = strings.ToLower(strings.Trim(host, "[]"))
		if net.ParseIP(host) == nil && host != "localhost" && !strings.HasSuffix(host, ".localhost") &&
			(me == "" || host != strings.ToLower(me)) {
			http.Error(w, "dashboard: unknown Host "+r.Host+"; open it by address or as localhost", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// control answers POST /api/workers/{id}/(drain|resume) with op's result.
func (s *Server) control(op func(Controller, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.ctl == nil {
			writeJSON(w, http.StatusNotImplemented, "this dispatcher cannot drain or resume workers")
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(tokenHeader)), []byte(s.token)) != 1 {
			writeJSON(w, http.StatusForbidden, "missing or wrong "+tokenHeader+": use the page, or bilancia ctl")
			return
		}
		if err := op(s.ctl, r.PathValue("id")); err != nil {
			writeJSON(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, "")
	}
}

// writeJSON answers {"ok":true}, or {"ok":false,"error":errMsg}.
func writeJSON(w http.ResponseWriter, code int, errMsg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	body := map[string]any{"ok": errMsg == ""}
	if errMsg != "" {
		body["error"] = errMsg
	}
	_ = json.NewEncoder(w).Encode(body)
}

// events streams frames to one page as server-sent events until the page
// goes, is too slow (see clientBuffer) or the server closes.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	host, ok := s.addrs.join(r)
	if !ok {
		http.Error(w, "dashboard: too many pages open from "+host, http.StatusServiceUnavailable)
		return
	}
	defer s.addrs.leave(host)
	first, c, err := s.hub.join(s.cfg.Dispatcher)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer s.hub.leave(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	send := func(b []byte) error {
		// A page that stops reading must not hold this goroutine forever.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * s.cfg.Interval))
		if _, err := w.Write([]byte("data: ")); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := w.Write([]byte("\n\n")); err != nil {
			return err
		}
		return rc.Flush()
	}
	if _, err := w.Write([]byte("retry: 2000\n")); err != nil {
		return
	}
	if send(first) != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case b, ok := <-c:
			if !ok {
				return
			}
			if send(b) != nil {
				return
			}
		}
	}
}
