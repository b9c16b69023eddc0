package broker_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/internal/testutil"
)

// writeConf writes a nats-server configuration file, replacing it.
func writeConf(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// maxPayload is what a new connection to url is told the largest message is.
func maxPayload(t testing.TB, url string, opts ...nats.Option) int64 {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer nc.Close()
	return nc.MaxPayload()
}

// TestReload: Reload applies the file as it now is, the Config's own
// fields over it, and a file nats-server cannot apply changes nothing.
func TestReload(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	writeConf(t, conf, "max_payload: 2048\n")
	b := brokertest.Start(t, broker.Config{ConfigFile: conf, Port: -1})
	url := b.ClientURL()
	if got := maxPayload(t, url); got != 2048 {
		t.Fatalf("max payload = %d; want the file's 2048", got)
	}
	// Quiet: nats.go prints the asynchronous errors of a connection
	// without a handler, and the authorization below closes this one.
	old, err := nats.Connect(url, nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	writeConf(t, conf, "max_payload: 4096\n")
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := maxPayload(t, url); got != 4096 {
		t.Errorf("max payload after Reload = %d; want 4096", got)
	}

	for _, tc := range []struct{ name, text, want string }{
		{"syntax error", "max_payload: {\n", "Parse error"},
		{"not changeable while running", "max_payload: 4096\nserver_name: other\n", "ServerName"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeConf(t, conf, tc.text)
			err := b.Reload()
			if !errors.Is(err, broker.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload = %v; want %v naming %s", err, broker.ErrInvalidConfig, tc.want)
			}
			if got := maxPayload(t, url); got != 4096 {
				t.Errorf("max payload after a failed Reload = %d; want 4096 still", got)
			}
		})
	}

	// Authorization added: a client without the token is turned away,
	// the one already connected is closed.
	writeConf(t, conf, "max_payload: 4096\nauthorization { token: s3cret }\n")
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if _, err := nats.Connect(url, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("connect without the token after Reload: %v; want %v", err, nats.ErrAuthorization)
	}
	if got := maxPayload(t, url, nats.Token("s3cret")); got != 4096 {
		t.Errorf("max payload with the token = %d; want 4096", got)
	}
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if old.IsConnected() {
			return errors.New("the connection without a token is still up")
		}
		return nil
	})
}

// TestReloadKeepsFlags: a field set in Config wins over the file after a
// Reload as before it, as nats-server's flags do.
func TestReloadKeepsFlags(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	writeConf(t, conf, "max_payload: 2048\n")
	b := brokertest.Start(t, broker.Config{ConfigFile: conf, Port: -1, MaxPayload: 3000})
	writeConf(t, conf, "max_payload: 4096\n")
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := maxPayload(t, b.ClientURL()); got != 3000 {
		t.Errorf("max payload after Reload = %d; want the Config's 3000", got)
	}
}

// TestReloadWithAuth: a Reload keeps the auth directory's users and
// reads the directory again; the directory's own watch, afterwards, keeps
// what the Reload applied.
func TestReloadWithAuth(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	writeConf(t, conf, "max_payload: 2048\n")
	b, dir := startAuth(t, broker.Config{ConfigFile: conf, AuthPoll: -1})
	url := b.ClientURL()
	def := dialAs(t, url, filepath.Join(dir, broker.ClientCredential))

	bob, _, err := broker.AddClient(dir, "bob")
	if err != nil {
		t.Fatal(err)
	}
	writeConf(t, conf, "max_payload: 4096\n")
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	c := dialAs(t, url, bob) // read at the Reload, with no poll
	if got := c.MaxPayload(); got != 4096 {
		t.Errorf("max payload after Reload = %d; want 4096", got)
	}
	dialAs(t, url, filepath.Join(dir, broker.WorkerCredential))
	if !def.IsConnected() {
		t.Error("the Reload disconnected a client whose credential stays")
	}
	if _, err := tryDialAs(url, ""); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("connect without a credential after Reload: %v; want %v", err, nats.ErrAuthorization)
	}
}

// TestAuthWatchAfterReload: the auth directory's watch reloads from what
// Reload applied, not from the configuration before it.
func TestAuthWatchAfterReload(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	writeConf(t, conf, "max_payload: 2048\n")
	b, dir := startAuth(t, broker.Config{ConfigFile: conf})
	url := b.ClientURL()
	writeConf(t, conf, "max_payload: 4096\n")
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	bob, _, err := broker.AddClient(dir, "bob")
	if err != nil {
		t.Fatal(err)
	}
	var c *conn
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err = tryDialAs(url, bob)
		return err
	})
	defer c.Close()
	if got := c.MaxPayload(); got != 4096 {
		t.Errorf("max payload after the watch's reload = %d; want 4096 (Reload's)", got)
	}
}

// TestReloadWithoutConfigFile reads the files the Config names again and
// keeps the rest.
func TestReloadWithoutConfigFile(t *testing.T) {
	b := brokertest.Start(t, broker.Config{Port: -1, MaxPayload: 3000})
	if err := b.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := maxPayload(t, b.ClientURL()); got != 3000 {
		t.Errorf("max payload after Reload = %d; want 3000", got)
	}
}

// TestReloadNotRunning: Reload before Start and after Shutdown says so.
func TestReloadNotRunning(t *testing.T) {
	b, err := broker.New(broker.Config{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Reload(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Reload before Start = %v; want %v", err, broker.ErrClosed)
	}
	b.Shutdown()
	if err := b.Reload(); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Reload after Shutdown = %v; want %v", err, broker.ErrClosed)
	}
}
