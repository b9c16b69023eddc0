package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/internal/natsutil"
)

// NATSFlags are the connection flags every connecting role shares. Each
// has one environment variable for every role, named in its env tag, so
// that one environment serves a whole deployment (roleEnvars).
type NATSFlags struct {
	NATS         string        `name:"nats" env:"BILANCIA_NATS,NATS_URL" help:"NATS server URL(s), comma separated (default: the nats context's, see --context, else nats://127.0.0.1:4222)."`
	Context      string        `name:"context" env:"BILANCIA_CONTEXT,NATS_CONTEXT" placeholder:"NAME" help:"Connect as the nats CLI's context NAME (nats context save): its servers, credentials, TLS files and inbox prefix; the flags win over it. Default: the context nats context select chose, unless --nats is given."`
	Prefix       string        `env:"BILANCIA_PREFIX" default:"calc" help:"Subject prefix."`
	Creds        string        `type:"existingfile" env:"BILANCIA_CREDS,NATS_CREDS" help:"NATS credentials file."`
	NKey         string        `name:"nkey" type:"existingfile" env:"BILANCIA_NKEY" help:"NATS NKey seed file (e.g. broker --auth's DIR/<role>.nk)."`
	InboxPrefix  string        `env:"BILANCIA_INBOX_PREFIX" help:"Reply inbox prefix (default: the one the --nkey file names, else _INBOX)."`
	User         string        `env:"BILANCIA_USER,NATS_USER" help:"NATS user name."`
	Password     string        `env:"BILANCIA_PASSWORD,NATS_PASSWORD" help:"NATS password."`
	Token        string        `env:"BILANCIA_TOKEN,NATS_TOKEN" help:"NATS token."`
	TLSCert      string        `name:"tls-cert" type:"existingfile" env:"BILANCIA_TLS_CERT" help:"TLS client certificate."`
	TLSKey       string        `name:"tls-key" type:"existingfile" env:"BILANCIA_TLS_KEY" help:"TLS client key."`
	TLSCA        string        `name:"tls-ca" type:"existingfile" env:"BILANCIA_TLS_CA" help:"TLS certificate authority."`
	ConnectWait  time.Duration `env:"BILANCIA_CONNECT_WAIT" default:"0s" help:"Keep trying to connect for this long at start (0 = fail at once)."`
	PingInterval time.Duration `env:"BILANCIA_PING_INTERVAL" default:"5s" help:"Ping the server this often; after 2 unanswered pings, move to another (0 = nats.go's default)."`

	resolved     bool          // resolve has run
	contextName  string        // the nats context applied, if any
	contextCreds bool          // the credential is the context's
	contextOpts  []nats.Option // what the context sets that no flag can
}

// errNoServer is shown as one plain sentence.
var errNoServer = errors.New("no NATS server answered")

// connect dials NATS with reconnects that never give up (natsutil.Options):
// a role outlives broker restarts and moves to another cluster node on its
// own. With --connect-wait it keeps trying that long at start.
func (f *NATSFlags) connect(name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	auth, err := f.options()
	if err != nil {
		return nil, err
	}
	opts := append(natsutil.Options(name, log), auth...)
	opts = append(opts, extra...)
	if f.ConnectWait <= 0 {
		nc, err := nats.Connect(f.NATS, opts...)
		if err != nil {
			return nil, f.connectFailure(err)
		}
		return nc, nil
	}
	return f.connectWaiting(opts)
}

// connectWaiting lets nats.go retry a failed first connect as it does a
// reconnect, and waits until it is connected, for --connect-wait at most.
func (f *NATSFlags) connectWaiting(opts []nats.Option) (*nats.Conn, error) {
	deadline := time.NewTimer(f.ConnectWait)
	defer deadline.Stop()
	var dialErr atomic.Pointer[error] // the last try's, as without the wait
	nc, err := nats.Connect(f.NATS, append(opts,
		nats.RetryOnFailedConnect(true),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { dialErr.Store(&err) }),
	)...)
	if err != nil {
		return nil, f.connectFailure(err)
	}
	status := nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	defer nc.RemoveStatusListener(status)
wait:
	for !nc.IsConnected() && !nc.IsClosed() {
		select {
		case <-status:
		case <-deadline.C:
			break wait
		}
	}
	if nc.IsConnected() {
		return nc, nil
	}
	// A server that answered and refused (authentication) left its error
	// on the connection; else the last dial's tells why none answered,
	// unless it was only refused.
	err = nc.LastError()
	nc.Close()
	if p := dialErr.Load(); err == nil && p != nil && !errors.Is(*p, syscall.ECONNREFUSED) {
		err = *p
	}
	if err == nil {
		err = nats.ErrNoServers
	}
	return nil, f.connectFailure(err)
}

// connectFailure is a failed connect as the user reads it.
func (f *NATSFlags) connectFailure(err error) error {
	if errors.Is(err, nats.ErrNoServers) {
		return fmt.Errorf("%w at %s", errNoServer, f.NATS)
	}
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
		return fmt.Errorf("connect to %s: the broker refused %s: %w", f.NATS, f.credentialName(), err)
	}
	return fmt.Errorf("connect to %s: %w", f.NATS, err)
}

// credentialName says which credential a refused connect brought.
func (f *NATSFlags) credentialName() string {
	if f.contextCreds {
		return "the credentials of nats context " + f.contextName
	}
	switch {
	case f.NKey != "":
		return "the credential " + f.NKey
	case f.Creds != "":
		return "the credentials " + f.Creds
	case f.User != "" || f.Token != "":
		return "the user or token given"
	}
	return "a connection without credentials (give it --nkey FILE, e.g. broker --auth's DIR/<role>.nk)"
}

// options returns the ping, credential and TLS options, for connect and
// for the client library, which dials on its own.
func (f *NATSFlags) options() ([]nats.Option, error) {
	if err := f.resolve(); err != nil {
		return nil, err
	}
	opts := append([]nats.Option(nil), f.contextOpts...)
	if f.PingInterval > 0 {
		opts = append(opts, nats.PingInterval(f.PingInterval), nats.MaxPingsOutstanding(2))
	}
	if f.Creds != "" {
		opts = append(opts, nats.UserCredentials(f.Creds))
	}
	if f.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(f.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey: %w", err)
		}
		opts = append(opts, o)
	}
	prefix := f.InboxPrefix
	if prefix == "" && f.NKey != "" {
		// A client credential of broker --auth may subscribe only under
		// the inbox prefix it names.
		p, err := broker.InboxPrefixOf(f.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey: %w", err)
		}
		prefix = p
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	if f.User != "" {
		opts = append(opts, nats.UserInfo(f.User, f.Password))
	}
	if f.Token != "" {
		opts = append(opts, nats.Token(f.Token))
	}
	if f.TLSCert != "" || f.TLSKey != "" {
		opts = append(opts, nats.ClientCert(f.TLSCert, f.TLSKey))
	}
	if f.TLSCA != "" {
		opts = append(opts, nats.RootCAs(f.TLSCA))
	}
	return opts, nil
}
