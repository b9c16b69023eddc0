package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/internal/testutil"
)

// startAuth starts a broker with an auth directory on a random loopback
// port, reading the directory again every 20ms.
func startAuth(t testing.TB, cfg broker.Config) (*broker.Broker, string) {
	t.Helper()
	if cfg.AuthDir == "" {
		cfg.AuthDir = filepath.Join(t.TempDir(), "auth")
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	if cfg.AuthPoll == 0 {
		cfg.AuthPoll = 20 * time.Millisecond
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(b.Shutdown)
	return b, cfg.AuthDir
}

// conn is a connection of one credential, with the permission errors the
// broker sent it.
type conn struct {
	*nats.Conn
	mu   sync.Mutex
	errs []error
}

// dialAs connects with the credential in file, using the inbox prefix it
// names, as bilancia --nkey does.
func dialAs(t testing.TB, url, file string) *conn {
	t.Helper()
	c, err := tryDialAs(url, file)
	if err != nil {
		t.Fatalf("connect with %s: %v", filepath.Base(file), err)
	}
	t.Cleanup(c.Close)
	return c
}

func tryDialAs(url, file string) (*conn, error) {
	c := &conn{}
	opts := []nats.Option{nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.errs = append(c.errs, err)
		c.mu.Unlock()
	})}
	if file != "" {
		o, err := nats.NkeyOptionFromSeed(file)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
		prefix, err := broker.InboxPrefixOf(file)
		if err != nil {
			return nil, err
		}
		if prefix != "" {
			opts = append(opts, nats.CustomInboxPrefix(prefix))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	c.Conn = nc
	return c, nil
}

// denied waits for the broker's permissions violation naming subj, after
// a round trip that follows what was refused.
func (c *conn) denied(t testing.TB, subj string) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, err := range c.errs {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subj+`"`) {
				return nil
			}
		}
		return fmt.Errorf("no permissions violation for %q; errors %v", subj, c.errs)
	})
}

// allowed checks that the broker refused nothing so far.
func (c *conn) allowed(t testing.TB) {
	t.Helper()
	if err := c.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) > 0 {
		t.Fatalf("errors %v; want none", c.errs)
	}
}

func (c *conn) subscribe(t testing.TB, subj string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	if _, err := c.ChanSubscribe(subj, ch); err != nil {
		t.Fatal(err)
	}
	return ch
}

func next(t testing.TB, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
		return nil
	}
}

// TestAuthPermissions: each role's credential is held to its subjects. A
// client cannot receive worker subjects, register a worker or read another
// client's replies; a worker cannot write to a client's inbox; and the
// path client → dispatcher → worker → dispatcher → client works.
func TestAuthPermissions(t *testing.T) {
	b, dir := startAuth(t, broker.Config{})
	url := b.ClientURL()
	alice, prefix, err := broker.AddClient(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if prefix != "_INBOX_CLIENT.alice" {
		t.Fatalf("AddClient prefix = %q; want _INBOX_CLIENT.alice", prefix)
	}
	cred := func(f string) string { return filepath.Join(dir, f) }
	var aliceConn *conn
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := tryDialAs(url, alice)
		if err == nil {
			aliceConn = c
			t.Cleanup(c.Close)
		}
		return err
	})

	disp := dialAs(t, url, cred(broker.DispatcherCredential))
	seen := disp.subscribe(t, "calc.>") // what reaches the dispatchers
	disp.allowed(t)

	t.Run("client", func(t *testing.T) {
		for _, subj := range []string{"calc.worker.>", "calc.worker.w1", "calc.heartbeat.*", "calc.request", "calc.discover",
			"calc.claim.>", "calc.claim.w1", "calc.orphan", "calc.orphan.tok.*", "_INBOX.>", "_INBOX_CLIENT.alice.>", "_INBOX_CLIENT.>", "_INBOX_WORKER.>", ">"} {
			c := dialAs(t, url, cred(broker.ClientCredential))
			c.subscribe(t, subj)
			c.denied(t, subj)
		}
		for _, subj := range []string{"calc.heartbeat.w1", "calc.worker.w1", "calc.discover", "calc.direct", "calc.claim.w1", "calc.orphan", "calc.orphan.w1", "_INBOX.x.w1", "_INBOX_CLIENT.alice.x.y", "_INBOX_WORKER.w1.x", "calc.events.worker.w1.up", "calc.ctl.drain"} {
			c := dialAs(t, url, cred(broker.ClientCredential))
			if err := c.Publish(subj, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			c.denied(t, subj)
		}
		// A forged heartbeat never reaches a dispatcher: the hello sent
		// after it on the same connection arrives, alone.
		c := dialAs(t, url, cred(broker.ClientCredential))
		_ = c.Publish("calc.heartbeat.w-forged", []byte(`{"id":"w-forged","state":"up"}`))
		_ = c.Publish("calc.client.connect", []byte(`{"name":"default"}`))
		if m := next(t, seen); m.Subject != "calc.client.connect" {
			t.Fatalf("the dispatcher received %s; want only calc.client.connect", m.Subject)
		}
		c.denied(t, "calc.heartbeat.w-forged")
		own := dialAs(t, url, cred(broker.ClientCredential))
		own.subscribe(t, "_INBOX_CLIENT.default.>")
		own.allowed(t)
	})

	t.Run("worker", func(t *testing.T) {
		for _, subj := range []string{"calc.request", "calc.heartbeat.*", "calc.status", "_INBOX.>", "_INBOX_CLIENT.>"} {
			c := dialAs(t, url, cred(broker.WorkerCredential))
			c.subscribe(t, subj)
			c.denied(t, subj)
		}
		for _, subj := range []string{"_INBOX_CLIENT.default.x.y", "_INBOX_CLIENT.alice.x.y", "calc.request", "calc.client.connect", "calc.worker.w2"} {
			c := dialAs(t, url, cred(broker.WorkerCredential))
			_ = c.Publish(subj, nil)
			c.denied(t, subj)
		}
		// A reply whose dispatcher is gone: the broker's "no responders"
		// comes back on the worker's bounce subject, and the reply handed
		// over reaches the dispatchers.
		c := dialAs(t, url, cred(broker.WorkerCredential))
		bounce := c.subscribe(t, "calc.orphan.tok.*")
		if err := c.PublishMsg(&nats.Msg{Subject: "_INBOX.gone.w1", Reply: "calc.orphan.tok.1", Data: []byte("5")}); err != nil {
			t.Fatal(err)
		}
		if m := next(t, bounce); !natsutil.IsNoResponders(m) {
			t.Fatalf("on the bounce subject: %v %q; want no responders", m.Header, m.Data)
		}
		if err := c.Publish("calc.orphan", []byte("5")); err != nil {
			t.Fatal(err)
		}
		if m := next(t, seen); m.Subject != "calc.orphan" {
			t.Fatalf("the dispatcher received %s; want calc.orphan", m.Subject)
		}
		c.allowed(t)
	})

	t.Run("dispatcher", func(t *testing.T) {
		for _, subj := range []string{"_INBOX_CLIENT.>", "_INBOX_CLIENT.alice.>", ">"} {
			c := dialAs(t, url, cred(broker.DispatcherCredential))
			c.subscribe(t, subj)
			c.denied(t, subj)
		}
	})

	t.Run("request path", func(t *testing.T) {
		worker := dialAs(t, url, cred(broker.WorkerCredential))
		if _, err := worker.Subscribe("calc.worker.w1", func(m *nats.Msg) { _ = m.Respond([]byte("5")) }); err != nil {
			t.Fatal(err)
		}
		worker.subscribe(t, "calc.discover")
		if err := worker.Publish("calc.heartbeat.w1", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		d := dialAs(t, url, cred(broker.DispatcherCredential))
		// Forwarded with a reply subject under _INBOX, relayed to the
		// client's inbox.
		if _, err := d.Subscribe("calc.request", func(m *nats.Msg) {
			if r, err := d.Request("calc.worker.w1", m.Data, 2*time.Second); err == nil {
				_ = m.Respond(r.Data)
			}
		}); err != nil {
			t.Fatal(err)
		}
		worker.allowed(t)
		d.allowed(t)
		for _, c := range []*conn{aliceConn, dialAs(t, url, cred(broker.ClientCredential))} {
			r, err := c.Request("calc.request", []byte("add 2 3"), 5*time.Second)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if string(r.Data) != "5" {
				t.Fatalf("reply %q; want 5", r.Data)
			}
			c.allowed(t)
		}
		worker.allowed(t)
		d.allowed(t)
	})
}

// TestAuthRefusesStrangers: no credential, or one the directory does not
// hold, is refused at connect.
func TestAuthRefusesStrangers(t *testing.T) {
	b, _ := startAuth(t, broker.Config{})
	if _, err := tryDialAs(b.ClientURL(), ""); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect without credentials: %v; want %v", err, nats.ErrAuthorization)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	stranger := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(stranger, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tryDialAs(b.ClientURL(), stranger); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with an unknown seed: %v; want %v", err, nats.ErrAuthorization)
	}
	if !b.AuthRequired() {
		t.Fatal("AuthRequired() = false; want true")
	}
}

// TestAuthReload: a client credential added to a running broker's
// directory is taken up without a restart; removed, its connections are
// closed and it can no longer connect.
func TestAuthReload(t *testing.T) {
	b, dir := startAuth(t, broker.Config{})
	url := b.ClientURL()
	path, _, err := broker.AddClient(dir, "bob")
	if err != nil {
		t.Fatal(err)
	}
	var bob *conn
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := tryDialAs(url, path)
		if err == nil {
			bob = c
		}
		return err
	})
	defer bob.Close()
	bob.subscribe(t, "_INBOX_CLIENT.bob.>")
	bob.allowed(t)
	// The default client still works, and cannot read bob's replies.
	def := dialAs(t, url, filepath.Join(dir, broker.ClientCredential))
	def.subscribe(t, "_INBOX_CLIENT.bob.>")
	def.denied(t, "_INBOX_CLIENT.bob.>")

	kept := filepath.Join(t.TempDir(), "bob.nk") // the seed, once its file is gone
	if data, err := os.ReadFile(path); err != nil || os.WriteFile(kept, data, 0o600) != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
	if err := broker.RemoveClient(dir, "bob"); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if !bob.IsClosed() {
			return errors.New("bob's connection still open")
		}
		return nil
	})
	if _, err := tryDialAs(url, kept); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with a removed credential: %v; want %v", err, nats.ErrAuthorization)
	}
	if !def.IsConnected() {
		t.Fatal("the default client was disconnected by the reload")
	}
}

// TestAuthBadClientFileLeftOut: a client credential renamed by hand names
// another inbox than its file: it is left out, the others stay.
func TestAuthBadClientFileLeftOut(t *testing.T) {
	b, dir := startAuth(t, broker.Config{})
	path, _, err := broker.AddClient(dir, "carol")
	if err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(dir, broker.ClientsDir, "mallory.nk")
	if err := os.Rename(path, renamed); err != nil {
		t.Fatal(err)
	}
	dave, _, err := broker.AddClient(dir, "dave")
	if err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := tryDialAs(b.ClientURL(), dave)
		if err == nil {
			c.Close()
		}
		return err
	})
	if _, err := tryDialAs(b.ClientURL(), renamed); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with a renamed credential: %v; want %v", err, nats.ErrAuthorization)
	}
}

// TestAuthCluster: brokers sharing an auth directory route to one another
// with its route secret, and a client's request crosses the route.
func TestAuthCluster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	a, _ := startAuth(t, broker.Config{AuthDir: dir, ServerName: "A", ClusterPort: -1})
	b, _ := startAuth(t, broker.Config{AuthDir: dir, ServerName: "B", ClusterPort: -1, Routes: []string{a.ClusterURL()}})
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a.NumRoutes() != 1 || b.NumRoutes() != 1 {
			return fmt.Errorf("routes A=%d B=%d; want 1 each", a.NumRoutes(), b.NumRoutes())
		}
		return nil
	})
	d := dialAs(t, b.ClientURL(), filepath.Join(dir, broker.DispatcherCredential))
	if _, err := d.Subscribe("calc.request", func(m *nats.Msg) { _ = m.Respond([]byte("ok")) }); err != nil {
		t.Fatal(err)
	}
	d.allowed(t)
	c := dialAs(t, a.ClientURL(), filepath.Join(dir, broker.ClientCredential))
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := c.Request("calc.request", nil, time.Second)
		return err
	})
	// A client added while clustered: both brokers reload, and keep
	// their route.
	erin, _, err := broker.AddClient(dir, "erin")
	if err != nil {
		t.Fatal(err)
	}
	for _, br := range []*broker.Broker{a, b} {
		testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
			c, err := tryDialAs(br.ClientURL(), erin)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Request("calc.request", nil, time.Second)
			return err
		})
	}
	if a.NumRoutes() != 1 || b.NumRoutes() != 1 {
		t.Fatalf("after the reload, routes A=%d B=%d; want 1 each", a.NumRoutes(), b.NumRoutes())
	}
}

// TestTLS: a broker serving TLS with a certificate from a throwaway CA is
// reached by a client that trusts the CA, and refused by one that does
// not; with the CA for clients too, only a client with a certificate gets in.
func TestTLS(t *testing.T) {
	f := brokertest.NewTLS(t)
	b, dir := startAuth(t, broker.Config{TLSCert: f.ServerCert, TLSKey: f.ServerKey})
	if !strings.HasPrefix(b.ClientURL(), "tls://") {
		t.Fatalf("ClientURL() = %q; want tls://", b.ClientURL())
	}
	nkey, err := nats.NkeyOptionFromSeed(filepath.Join(dir, broker.AdminCredential))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(b.ClientURL(), nats.NoReconnect(), nkey); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("connect without the CA: %v; want a certificate error", err)
	}
	nc, err := nats.Connect(b.ClientURL(), nats.NoReconnect(), nkey, nats.RootCAs(f.CA))
	if err != nil {
		t.Fatalf("connect with the CA: %v", err)
	}
	nc.Close()

	mutual := startTLSBroker(t, broker.Config{Host: "127.0.0.1", Port: -1, TLSCert: f.ServerCert, TLSKey: f.ServerKey, TLSCA: f.CA})
	if _, err := nats.Connect(mutual.ClientURL(), nats.NoReconnect(), nats.RootCAs(f.CA)); err == nil {
		t.Fatal("connect to a broker that wants client certificates, without one: nil error")
	}
	nc, err = nats.Connect(mutual.ClientURL(), nats.NoReconnect(), nats.RootCAs(f.CA), nats.ClientCert(f.ClientCert, f.ClientKey))
	if err != nil {
		t.Fatalf("connect with the CA and a client certificate: %v", err)
	}
	nc.Close()
}

func startTLSBroker(t testing.TB, cfg broker.Config) *broker.Broker {
	t.Helper()
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b
}

// TestInsecure: a broker that clients or routes could reach from beyond
// loopback without authentication is refused, unless Insecure says so.
func TestInsecure(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte("authorization { token: s3cret }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := brokertest.NewTLS(t)
	tests := []struct {
		name string
		cfg  broker.Config
		want error
	}{
		{"loopback", broker.Config{Host: "127.0.0.1"}, nil},
		{"loopback by name", broker.Config{Host: "localhost"}, nil},
		{"loopback v6", broker.Config{Host: "::1"}, nil},
		{"default host", broker.Config{}, nil},
		{"all interfaces", broker.Config{Host: "0.0.0.0"}, broker.ErrInsecure},
		{"all interfaces v6", broker.Config{Host: "::"}, broker.ErrInsecure},
		{"an address", broker.Config{Host: "192.0.2.1"}, broker.ErrInsecure},
		{"insecure", broker.Config{Host: "0.0.0.0", Insecure: true}, nil},
		{"auth dir", broker.Config{Host: "0.0.0.0", AuthDir: t.TempDir()}, nil},
		{"config file authorization", broker.Config{Host: "0.0.0.0", ConfigFile: conf}, nil},
		{"tls without client certificates", broker.Config{Host: "0.0.0.0", TLSCert: f.ServerCert, TLSKey: f.ServerKey}, broker.ErrInsecure},
		{"tls with client certificates", broker.Config{Host: "0.0.0.0", TLSCert: f.ServerCert, TLSKey: f.ServerKey, TLSCA: f.CA}, nil},
		{"open routes", broker.Config{ClusterHost: "0.0.0.0", ClusterPort: 6222}, broker.ErrInsecure},
		{"open routes of an authenticated server", broker.Config{Host: "0.0.0.0", ConfigFile: conf, ClusterPort: 6222}, broker.ErrInsecure},
		{"loopback routes", broker.Config{ClusterPort: 6222}, nil},
		{"routes with an auth dir", broker.Config{Host: "0.0.0.0", ClusterPort: 6222, AuthDir: t.TempDir()}, nil},
		{"open routes, insecure", broker.Config{ClusterHost: "0.0.0.0", ClusterPort: 6222, Insecure: true}, nil},
		{"auth dir and a config file's authorization", broker.Config{AuthDir: t.TempDir(), ConfigFile: conf}, broker.ErrInvalidConfig},
		{"tls ca without a certificate", broker.Config{TLSCA: f.CA}, broker.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := broker.New(tt.cfg)
			if b != nil {
				b.Shutdown()
			}
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("New(%+v) = %v; want %v", tt.cfg, err, tt.want)
			}
		})
	}
}
