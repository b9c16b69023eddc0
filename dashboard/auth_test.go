package dashboard

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"
)

// TestStartBeyondLoopback: beyond loopback the page needs a token or
// client certificates of its own, or Insecure.
func TestStartBeyondLoopback(t *testing.T) {
	r := newRig(t)
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"loopback", Config{Addr: "127.0.0.1:0"}, nil},
		{"localhost", Config{Addr: "localhost:0"}, nil},
		{"all interfaces", Config{Addr: "0.0.0.0:0"}, ErrInsecure},
		{"all interfaces v6", Config{Addr: "[::]:0"}, ErrInsecure},
		{"with a token", Config{Addr: "0.0.0.0:0", Token: "s3cret-token"}, nil},
		{"insecure", Config{Addr: "0.0.0.0:0", Insecure: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Dispatcher = r.d1
			s, err := Start(tt.cfg)
			if s != nil {
				s.Close()
			}
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Start(%s) = %v; want %v", tt.cfg.Addr, err, tt.want)
			}
		})
	}
	if s, err := Start(Config{Addr: "0.0.0.0:0", Dispatcher: r.d1, TLSCA: "ca.pem"}); err == nil {
		s.Close()
		t.Fatal("Start with a TLS CA and no certificate succeeded")
	}
}

// TestToken: with a token, every request must bring it; a page opened
// with ?token= gets a cookie for its stream and buttons.
func TestToken(t *testing.T) {
	r := newRig(t)
	s, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: r.d1, Interval: 50 * time.Millisecond, Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	get := func(c *http.Client, path string, h map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL()+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	plain := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"", "events", "app.js", "?token=wrong"} {
		if code := get(plain, path, nil); code != http.StatusUnauthorized {
			t.Errorf("GET /%s without the token = %d; want 401", path, code)
		}
	}
	if code := get(plain, "", map[string]string{"Authorization": "Bearer s3cret-token"}); code != http.StatusOK {
		t.Errorf("GET / with the bearer token = %d; want 200", code)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if code := get(browser, "?token=s3cret-token", nil); code != http.StatusOK {
		t.Fatalf("GET /?token= = %d; want 200 after the redirect", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"events", nil)
	resp, err := browser.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events with the cookie: %v %v; want 200", resp, err)
	}
	resp.Body.Close()
}

// TestMaxPagesPerAddr: one address cannot take every stream; another
// still gets in.
func TestMaxPagesPerAddr(t *testing.T) {
	r := newRig(t)
	s, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: r.d1, Interval: 50 * time.Millisecond, MaxPagesPerAddr: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(c *http.Client) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"events", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
		}
		return resp.StatusCode
	}
	one := from("127.0.0.1")
	for i := range 2 {
		if code := open(one); code != http.StatusOK {
			t.Fatalf("stream %d from 127.0.0.1 = %d; want 200", i, code)
		}
	}
	if code := open(one); code != http.StatusServiceUnavailable {
		t.Fatalf("a third stream from 127.0.0.1 = %d; want 503", code)
	}
	if code := open(from("127.0.0.2")); code != http.StatusOK {
		t.Fatalf("a stream from 127.0.0.2 = %d; want 200", code)
	}
}
