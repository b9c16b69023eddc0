package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
)

// rig is a broker, two dispatchers (d1 with the dashboard), and workers
// w1 and w2, in this process, with 50 ms heartbeats.
type rig struct {
	nc   *nats.Conn
	d1   *dispatcher.Dispatcher
	dash *Server
}

func newRig(t *testing.T) *rig {
	t.Helper()
	const hb = 50 * time.Millisecond
	url := brokertest.Run(t).ClientURL()
	conn := func() *nats.Conn {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	stop := func(f func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = f(ctx)
	}
	r := &rig{nc: conn()}
	for _, id := range []string{"d1", "d2"} {
		d, err := dispatcher.New(dispatcher.Config{Conn: conn(), ID: id, Heartbeat: hb})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stop(d.Shutdown) })
		if id == "d1" {
			r.d1 = d
		}
	}
	for _, id := range []string{"w1", "w2"} {
		w, err := calcworker.New(calcworker.Config{Conn: conn(), ID: id, Heartbeat: hb})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stop(w.Shutdown) })
	}
	dash, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: r.d1, Conn: conn(), Gatherer: r.d1.Registry(),
		Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dash.Close() })
	r.dash = dash
	return r
}

// testFrame is a frame as the page reads it.
type testFrame struct {
	Full       bool
	Dispatcher summary
	Rows       [][]any
	Gone       []string
	Points     [][]any
	Cluster    []peer
}

// stream reads a page's event stream into frames until the test ends.
func stream(t *testing.T, url string) <-chan testFrame {
	t.Helper()
	frames, _ := rawStream(t, url)
	return frames
}

// rawStream is stream, with each frame's size in bytes on a second channel
// when the test reads it (it is not waited for).
func rawStream(t *testing.T, url string) (<-chan testFrame, <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events Content-Type = %q; want text/event-stream", ct)
	}
	out := make(chan testFrame, 1000)
	sizes := make(chan int, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<22)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var f testFrame
			if err := json.Unmarshal([]byte(data), &f); err != nil {
				t.Errorf("frame %q: %v", data, err)
				return
			}
			out <- f
			select {
			case sizes <- len(data):
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); wg.Wait() })
	return out, sizes
}

// page keeps the rows the frames built, as the page does.
type page map[string][]any

func (p page) apply(f testFrame) {
	if f.Full {
		clear(p)
	}
	for _, id := range f.Gone {
		delete(p, id)
	}
	for _, r := range f.Rows {
		p[r[0].(string)] = r
	}
}

// waitPage applies frames until ok holds for the page and the last frame.
func waitPage(t *testing.T, frames <-chan testFrame, p page, what string, ok func(page, testFrame) bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case f, open := <-frames:
			if !open {
				t.Fatalf("event stream ended before %s", what)
			}
			p.apply(f)
			if ok(p, f) {
				return
			}
		case <-deadline:
			t.Fatalf("no frame showed %s; page %v", what, p)
		}
	}
}

func TestStream(t *testing.T) {
	r := newRig(t)
	frames := stream(t, r.dash.URL())
	p := page{}
	first := <-frames
	if !first.Full || first.Dispatcher.ID != "d1" || !first.Dispatcher.Control || !first.Dispatcher.Latency {
		t.Errorf("first frame = %+v; want full, d1, control and latency", first)
	}
	p.apply(first)
	waitPage(t, frames, p, "w1 and w2 up and both dispatchers", func(p page, f testFrame) bool {
		return len(p) == 2 && p["w1"][1] == "up" && p["w2"][1] == "up" && len(f.Cluster) == 2
	})
	for range 50 {
		if _, err := r.nc.Request("calc.request", []byte("add 2 3"), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// The two dispatchers share the requests; the workers count them all.
	waitPage(t, frames, p, "50 served, a rate and a p50", func(p page, f testFrame) bool {
		served := p["w1"][4].(float64) + p["w2"][4].(float64)
		if f.Dispatcher.Served == 0 || served < 50 || len(f.Points) != 1 {
			return false
		}
		pt := f.Points[0]
		return pt[3] != nil && pt[3].(float64) > 0
	})
	// A second page starts with the charts' history and the same rows.
	second := <-stream(t, r.dash.URL())
	if !second.Full || len(second.Rows) != 2 || len(second.Points) < 2 {
		t.Errorf("second page's first frame: full %v, %d rows, %d points; want full, 2 rows, the history", second.Full, len(second.Rows), len(second.Points))
	}
}

func post(t *testing.T, url string, h map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

func TestDrainResume(t *testing.T) {
	r := newRig(t)
	frames := stream(t, r.dash.URL())
	p := page{}
	waitPage(t, frames, p, "w1 up", func(p page, _ testFrame) bool { return p["w1"] != nil && p["w1"][1] == "up" })
	u := r.dash.URL() + "api/workers/w1/"
	tok := map[string]string{tokenHeader: r.dash.token}
	refused := []struct {
		name string
		url  string
		h    map[string]string
		code int
	}{
		{"no token", u + "drain", nil, http.StatusForbidden},
		{"wrong token", u + "drain", map[string]string{tokenHeader: "x"}, http.StatusForbidden},
		{"from another site", u + "drain", map[string]string{tokenHeader: r.dash.token, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"from another origin", u + "drain", map[string]string{tokenHeader: r.dash.token, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"a rebound name", u + "drain", map[string]string{tokenHeader: r.dash.token, "Host": "evil.example"}, http.StatusForbidden},
		{"an invalid id", r.dash.URL() + "api/workers/a*b/drain", tok, http.StatusBadRequest},
		{"an unknown action", u + "disable", tok, http.StatusNotFound},
	}
	for _, tt := range refused {
		req, _ := http.NewRequest("POST", tt.url, nil)
		for k, v := range tt.h {
			req.Header.Set(k, v)
		}
		if tt.h["Host"] != "" {
			req.Host = tt.h["Host"]
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("%s: POST %s = %d; want %d", tt.name, tt.url, resp.StatusCode, tt.code)
		}
	}
	if d := r.d1.Drained(); len(d) != 0 {
		t.Fatalf("refused requests drained %v", d)
	}
	same := map[string]string{tokenHeader: r.dash.token, "Sec-Fetch-Site": "same-origin", "Origin": strings.TrimSuffix(r.dash.URL(), "/")}
	req, _ := http.NewRequest("POST", u+"drain", nil)
	for k, v := range same {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"ok":true}` {
		t.Fatalf("drain = %d %s; want 200 {\"ok\":true}", resp.StatusCode, body)
	}
	waitPage(t, frames, p, "w1 drained", func(p page, _ testFrame) bool { return p["w1"][9] == true })
	if code, msg := post(t, u+"resume", same); code != http.StatusOK {
		t.Fatalf("resume = %d %s; want 200", code, msg)
	}
	waitPage(t, frames, p, "w1 resumed", func(p page, _ testFrame) bool { return p["w1"][9] == false })
}

func TestPageAndHosts(t *testing.T) {
	r := newRig(t)
	get := func(path, host string) (int, string) {
		req, _ := http.NewRequest("GET", r.dash.URL()+path, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
		return resp.StatusCode, b.String()
	}
	code, body := get("", "")
	if code != 200 || !strings.Contains(body, r.dash.token) || strings.Contains(body, "{{TOKEN}}") {
		t.Errorf("GET / = %d, token in page %v; want 200 with the token", code, strings.Contains(body, r.dash.token))
	}
	for _, path := range []string{"app.js", "style.css"} {
		if code, body := get(path, ""); code != 200 || len(body) < 100 {
			t.Errorf("GET /%s = %d, %d bytes; want 200 and the file", path, code, len(body))
		}
	}
	for _, host := range []string{"localhost", "[::1]:80", "10.0.0.1:8222"} {
		if code, _ := get("", host); code != 200 {
			t.Errorf("GET / with Host %s = %d; want 200", host, code)
		}
	}
	if code, _ := get("", "attacker.example:8222"); code != http.StatusForbidden {
		t.Errorf("GET / with Host attacker.example = %d; want 403", code)
	}
	if code, _ := get("nothing", ""); code != http.StatusNotFound {
		t.Errorf("GET /nothing = %d; want 404", code)
	}
}

// TestClose: Close ends open streams, is safe twice and concurrently, and
// leaves no goroutine behind.
func TestClose(t *testing.T) {
	r := newRig(t)
	others := goleak.IgnoreCurrent()
	s, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: r.d1, Conn: r.nc, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	frames := stream(t, s.URL())
	<-frames
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Close() }()
	}
	wg.Wait()
	_ = s.Close()
	for range frames { // the stream ends
	}
	http.DefaultClient.CloseIdleConnections()
	if err := goleak.Find(others); err != nil {
		t.Error(err)
	}
	if _, err := http.Get(s.URL()); err == nil {
		t.Error("GET after Close succeeded")
	}
}

// TestMaxPages: a page beyond MaxPages is refused with 503 until one goes.
func TestMaxPages(t *testing.T) {
	r := newRig(t)
	s, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: r.d1, Interval: 50 * time.Millisecond, MaxPages: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL()+"events", nil)
	first, err := http.DefaultClient.Do(req)
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first page: %v %v; want 200", first, err)
	}
	resp, err := http.Get(s.URL() + "events")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second page: %s; want 503", resp.Status)
	}
	cancel()
	first.Body.Close()
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		resp, err := http.Get(s.URL() + "events")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("after the first page went: %s; want 200", resp.Status)
		}
		return nil
	})
}

func TestStartErrors(t *testing.T) {
	r := newRig(t)
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:0"},
		{Addr: "nonsense", Dispatcher: r.d1},
		{Addr: "127.0.0.1:0", Dispatcher: r.d1, Interval: -1},
		{Addr: strings.TrimPrefix(strings.TrimSuffix(r.dash.URL(), "/"), "http://"), Dispatcher: r.d1},
	} {
		if s, err := Start(cfg); err == nil {
			s.Close()
			t.Errorf("Start(%+v) succeeded; want an error", cfg)
		}
	}
	s, err := Start(Config{Addr: ":0", Dispatcher: r.d1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Loopback() || !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("Start(:0): loopback %v, URL %s; want 127.0.0.1", s.Loopback(), s.URL())
	}
}
