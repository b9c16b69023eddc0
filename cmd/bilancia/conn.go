package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// NATSFlags are the connection flags every connecting role shares.
type NATSFlags struct {
	NATS         string        `name:"nats" env:"BILANCIA_NATS,NATS_URL" default:"nats://127.0.0.1:4222" help:"NATS server URL(s), comma separated."`
	Prefix       string        `default:"calc" help:"Subject prefix."`
	Creds        string        `type:"existingfile" env:"BILANCIA_CREDS,NATS_CREDS" help:"NATS credentials file."`
	NKey         string        `name:"nkey" type:"existingfile" help:"NATS NKey seed file."`
	User         string        `env:"BILANCIA_USER,NATS_USER" help:"NATS user name."`
	Password     string        `env:"BILANCIA_PASSWORD,NATS_PASSWORD" help:"NATS password."`
	Token        string        `env:"BILANCIA_TOKEN,NATS_TOKEN" help:"NATS token."`
	TLSCert      string        `name:"tls-cert" type:"existingfile" help:"TLS client certificate."`
	TLSKey       string        `name:"tls-key" type:"existingfile" help:"TLS client key."`
	TLSCA        string        `name:"tls-ca" type:"existingfile" help:"TLS certificate authority."`
	ConnectWait  time.Duration `default:"0s" help:"Keep trying to connect for this long at start (0 = fail at once)."`
	PingInterval time.Duration `default:"5s" help:"Ping the server this often and move to another after 2 unanswered pings (nats.go's default is 2m): a node cut off without a TCP reset is only noticed this way."`
}

// errNoServer is shown as one plain sentence.
var errNoServer = errors.New("no NATS server answered")

// connect dials NATS with reconnects that never give up: a role outlives
// broker restarts and moves to another cluster node on its own.
func (f *NATSFlags) connect(name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
	}
	if log != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
				if err != nil { // nil: we closed it ourselves
					log.Warn("nats disconnected", "error", err.Error())
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			}),
			nats.ErrorHandler(func(nc *nats.Conn, s *nats.Subscription, err error) {
				subj := ""
				if s != nil {
					subj = s.Subject
				}
				log.Error("nats error", "subject", subj, "error", err.Error())
			}),
		)
	}
	auth, err := f.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	opts = append(opts, extra...)
	deadline := time.Now().Add(f.ConnectWait)
	for {
		nc, err := nats.Connect(f.NATS, opts...)
		if err == nil {
			return nc, nil
		}
		if time.Now().After(deadline) {
			if errors.Is(err, nats.ErrNoServers) || strings.Contains(err.Error(), "connection refused") {
				return nil, fmt.Errorf("%w at %s", errNoServer, f.NATS)
			}
			return nil, fmt.Errorf("connect to %s: %w", f.NATS, err)
		}
		time.Sleep(250 * time.Millisecond) // a start-up retry, not synchronisation
	}
}

// options returns the ping, credential and TLS options, for connect and
// for the client library, which dials on its own.
func (f *NATSFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
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
