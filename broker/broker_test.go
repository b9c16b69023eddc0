package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func startBroker(t testing.TB, cfg Config) *Broker {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("nats.Connect(%q): %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// echo answers every request on subj with "<prefix>:<data>".
func echo(t testing.TB, nc *nats.Conn, subj, prefix string) {
	t.Helper()
	_, err := nc.Subscribe(subj, func(m *nats.Msg) {
		m.Respond([]byte(prefix + ":" + string(m.Data)))
	})
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", subj, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func port(t testing.TB, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", rawURL, err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("port of %q: %v", rawURL, err)
	}
	return p
}

func TestStartShutdown(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b, err := New(Config{Port: -1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := b.ClientURL(); got != "" {
		t.Errorf("ClientURL() before Start = %q; want \"\"", got)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := b.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v; want ErrStarted", err)
	}
	u := b.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") || port(t, u) == 0 {
		t.Errorf("ClientURL() = %q; want nats://127.0.0.1:<port>", u)
	}
	if got := b.ClusterURL(); got != "" {
		t.Errorf("ClusterURL() = %q; want \"\" without a cluster", got)
	}
	if got := b.MonitorURL(); got != "" {
		t.Errorf("MonitorURL() = %q; want \"\" without HTTPPort", got)
	}
	if got := b.NumRoutes(); got != 0 {
		t.Errorf("NumRoutes() = %d; want 0", got)
	}

	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	echo(t, nc, "ping", "pong")
	m, err := nc.Request("ping", []byte("1"), 2*time.Second)
	if err != nil || string(m.Data) != "pong:1" {
		t.Fatalf("Request = %v, %v; want pong:1", m, err)
	}

	b.Shutdown()
	b.Shutdown()
	b.WaitForShutdown()
	if b.Server().Running() {
		t.Error("Server().Running() after Shutdown = true")
	}
	if err := b.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Shutdown = %v; want ErrClosed", err)
	}
	testutil.CheckFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		if nc.IsConnected() {
			return errors.New("client still connected")
		}
		return nil
	})
	nc.Close()
}

func TestShutdownConcurrent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b, err := New(Config{Port: -1, HTTPPort: -1, ClusterPort: -1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(2)
		go func() { defer wg.Done(); b.Shutdown() }()
		go func() { defer wg.Done(); b.WaitForShutdown() }()
	}
	wg.Wait()
	if b.Server().Running() {
		t.Error("Server().Running() after Shutdown = true")
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b, err := New(Config{Port: -1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	b.Shutdown()
	b.WaitForShutdown()
	if err := b.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Shutdown = %v; want ErrClosed", err)
	}
}

func TestStartCancelled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	b, err := New(Config{Port: -1})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Start(ctx); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrStart) {
		t.Errorf("Start(cancelled) = %v; want ErrStart wrapping context.Canceled", err)
	}
	b.WaitForShutdown() // a failed Start leaves the broker shut down
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"port too large", Config{Port: 70000}},
		{"port below -1", Config{Port: -2}},
		{"cluster port out of range", Config{ClusterPort: -5}},
		{"http port out of range", Config{HTTPPort: 1 << 20}},
		{"negative max payload", Config{MaxPayload: -1}},
		{"routes without cluster port", Config{Routes: []string{"nats-route://127.0.0.1:6222"}}},
		{"route not a URL", Config{ClusterPort: -1, Routes: []string{"127.0.0.1:6222"}}},
		{"cluster name without port", Config{ClusterName: "c"}},
		{"server name with spaces", Config{ServerName: "a b"}},
		{"missing config file", Config{ConfigFile: filepath.Join(t.TempDir(), "nope.conf")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New(%+v) = %v, %v; want ErrInvalidConfig", tt.cfg, b, err)
			}
		})
	}
}

func TestPortFallback(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	t.Run("fallback", func(t *testing.T) {
		b := startBroker(t, Config{Port: taken, PortFallback: true})
		u := b.ClientURL()
		if got := port(t, u); got == taken || got == 0 {
			t.Fatalf("ClientURL() = %q; want a port other than the taken %d", u, taken)
		}
		nc := connect(t, u)
		echo(t, nc, "ping", "pong")
		if _, err := nc.Request("ping", nil, 2*time.Second); err != nil {
			t.Fatalf("Request via fallback port: %v", err)
		}
	})

	t.Run("no fallback", func(t *testing.T) {
		b, err := New(Config{Port: taken})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		start := time.Now()
		err = b.Start(context.Background())
		if !errors.Is(err, ErrStart) {
			t.Fatalf("Start on a taken port = %v; want ErrStart", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Start took %v to fail; want it to fail at once", d)
		}
		b.WaitForShutdown()
	})
}

func TestStartListenerTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		cfg  Config
	}{
		// PortFallback covers the client port only.
		{"cluster port", Config{Port: -1, PortFallback: true, ClusterPort: taken}},
		{"http port", Config{Port: -1, PortFallback: true, HTTPPort: taken}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			b, err := New(tt.cfg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			start := time.Now()
			if err := b.Start(context.Background()); !errors.Is(err, ErrStart) {
				t.Fatalf("Start = %v; want ErrStart", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Start took %v to fail; want it to fail at once", d)
			}
			b.WaitForShutdown()
		})
	}
}

func TestStartShutdownRace(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	for range 20 {
		b, err := New(Config{Port: -1, ClusterPort: -1})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		errc := make(chan error, 1)
		go func() { errc <- b.Start(context.Background()) }()
		b.Shutdown()
		if err := <-errc; err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrStart) {
			t.Errorf("Start racing Shutdown = %v; want nil, ErrClosed or ErrStart", err)
		}
		b.Shutdown()
		if b.Server().Running() {
			t.Error("Server().Running() after Shutdown = true")
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestConfigFile(t *testing.T) {
	p := freePort(t)
	conf := filepath.Join(t.TempDir(), "nats.conf")
	text := fmt.Sprintf("listen: 127.0.0.1:%d\nserver_name: from-file\nmax_payload: 2MB\n", p)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("file values", func(t *testing.T) {
		b := startBroker(t, Config{ConfigFile: conf})
		if got, want := b.ClientURL(), fmt.Sprintf("nats://127.0.0.1:%d", p); got != want {
			t.Errorf("ClientURL() = %q; want %q", got, want)
		}
		if got := b.Server().Name(); got != "from-file" {
			t.Errorf("Server().Name() = %q; want from-file", got)
		}
		nc := connect(t, b.ClientURL())
		if got := nc.MaxPayload(); got != 2<<20 {
			t.Errorf("MaxPayload() = %d; want %d", got, 2<<20)
		}
	})

	t.Run("fields override", func(t *testing.T) {
		b := startBroker(t, Config{ConfigFile: conf, Port: -1, ServerName: "from-config"})
		if got := port(t, b.ClientURL()); got == p {
			t.Errorf("ClientURL() port = %d; want a random port, not the file's", got)
		}
		if got := b.Server().Name(); got != "from-config" {
			t.Errorf("Server().Name() = %q; want from-config", got)
		}
	})
}

func TestAuthRequired(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, conf string
		want       bool
	}{
		{"none", "", false},
		{"token", "authorization { token: s3cret }\n", true},
		{"users", "authorization { users: [{user: a, password: b}] }\n", true},
		{"no_auth_user", "authorization { users: [{user: a, password: b}] }\nno_auth_user: a\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conf := filepath.Join(dir, tt.name+".conf")
			if err := os.WriteFile(conf, []byte(tt.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			b := startBroker(t, Config{ConfigFile: conf, Port: -1})
			if got := b.AuthRequired(); got != tt.want {
				t.Errorf("AuthRequired() = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestMonitor(t *testing.T) {
	b := startBroker(t, Config{Port: -1, HTTPPort: -1, ServerName: "mon"})
	mu := b.MonitorURL()
	if !strings.HasPrefix(mu, "http://127.0.0.1:") {
		t.Fatalf("MonitorURL() = %q; want http://127.0.0.1:<port>", mu)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(mu + "/varz")
	if err != nil {
		t.Fatalf("GET /varz: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /varz status = %d; want 200", resp.StatusCode)
	}
	var varz struct {
		ServerName string `json:"server_name"`
		Port       int    `json:"port"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		t.Fatalf("decode /varz: %v", err)
	}
	if varz.ServerName != "mon" || varz.Port != port(t, b.ClientURL()) {
		t.Errorf("/varz = %+v; want server_name mon, port %d", varz, port(t, b.ClientURL()))
	}
	client.CloseIdleConnections()
}

func TestLogger(t *testing.T) {
	tests := []struct {
		name      string
		trace     bool
		wantTrace bool
	}{
		{"notices", false, false},
		{"traces", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf testutil.SyncBuffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b := startBroker(t, Config{Port: -1, Logger: logger, Trace: tt.trace})
			nc := connect(t, b.ClientURL())
			if err := nc.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			nc.Close()
			b.Shutdown()
			out := buf.String()
			for _, want := range []string{`level=INFO msg="Server is ready"`, "Server Exiting"} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %q:\n%s", want, out)
				}
			}
			if got := strings.Contains(out, "[CONNECT"); got != tt.wantTrace {
				t.Errorf("log has a CONNECT trace = %v; want %v:\n%s", got, tt.wantTrace, out)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	a := startBroker(t, Config{Port: -1, ServerName: "A", ClusterPort: -1})
	if !strings.HasPrefix(a.ClusterURL(), "nats-route://127.0.0.1:") {
		t.Fatalf("ClusterURL() = %q; want nats-route://127.0.0.1:<port>", a.ClusterURL())
	}
	routes := []string{a.ClusterURL()}
	b := startBroker(t, Config{Port: -1, ServerName: "B", ClusterPort: -1, Routes: routes})
	c := startBroker(t, Config{Port: -1, ServerName: "C", ClusterPort: -1, Routes: routes})
	nodes := map[string]*Broker{"A": a, "B": b, "C": c}

	waitRoutes := func(want int, names ...string) {
		t.Helper()
		testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
			for _, n := range names {
				if got := nodes[n].NumRoutes(); got != want {
					return fmt.Errorf("%s.NumRoutes() = %d; want %d", n, got, want)
				}
			}
			return nil
		})
	}
	waitRoutes(2, "A", "B", "C")
	if got := a.Server().ClusterName(); got != DefaultClusterName {
		t.Errorf("ClusterName() = %q; want %q", got, DefaultClusterName)
	}

	// The responder starts on C and lists every node, so that it can move.
	var reconnected sync.WaitGroup
	reconnected.Add(1)
	var once sync.Once
	responder := connect(t, strings.Join([]string{c.ClientURL(), a.ClientURL(), b.ClientURL()}, ","),
		nats.DontRandomize(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20*time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.ReconnectHandler(func(*nats.Conn) { once.Do(reconnected.Done) }),
	)
	if got := responder.ConnectedUrl(); got != c.ClientURL() {
		t.Fatalf("responder connected to %q; want C at %q", got, c.ClientURL())
	}
	echo(t, responder, "calc.test", "ok")

	requester := connect(t, a.ClientURL())
	request := func(data string) error {
		m, err := requester.Request("calc.test", []byte(data), 500*time.Millisecond)
		if err != nil {
			return err
		}
		if got, want := string(m.Data), "ok:"+data; got != want {
			return fmt.Errorf("reply = %q; want %q", got, want)
		}
		return nil
	}
	// Interest crosses the route asynchronously.
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return request("via-C") })

	c.Shutdown()
	waitRoutes(1, "A", "B")
	reconnected.Wait()
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		if u := responder.ConnectedUrl(); u == "" || u == c.ClientURL() {
			return fmt.Errorf("responder connected to %q; want A or B", u)
		}
		return nil
	})
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error { return request("after-failover") })
}

func TestServerURL(t *testing.T) {
	tests := []struct {
		host string
		want string
	}{
		{"127.0.0.1", "nats://127.0.0.1:4222"},
		{"0.0.0.0", "nats://127.0.0.1:4222"},
		{"::", "nats://[::1]:4222"},
		{"::1", "nats://[::1]:4222"},
		{"localhost", "nats://localhost:4222"},
	}
	for _, tt := range tests {
		if got := serverURL("nats", tt.host, 4222); got != tt.want {
			t.Errorf("serverURL(nats, %q, 4222) = %q; want %q", tt.host, got, tt.want)
		}
	}
}

func TestPingInterval(t *testing.T) {
	b := startBroker(t, Config{Port: -1, PingInterval: 2 * time.Second})
	v, err := b.Server().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.PingInterval != 2*time.Second {
		t.Fatalf("ping interval = %v; want 2s", v.PingInterval)
	}
}
