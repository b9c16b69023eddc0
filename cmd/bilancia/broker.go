package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/bilancia/bilancia/broker"
)

// BrokerCmd runs an embedded nats-server.
type BrokerCmd struct {
	Host             string        `help:"Client listen address (default: --config's, else 127.0.0.1; 0.0.0.0 for all: needs --auth or --insecure)."`
	Port             int           `help:"Client port (default: --config's, else 4222; -1 = random)."`
	Name             string        `help:"Server name (default: generated)."`
	Config           string        `type:"existingfile" help:"A nats-server configuration file: its values stand unless a flag sets them; SIGHUP reloads it."`
	ClusterName      string        `help:"Cluster name (default bilancia when clustered)."`
	ClusterHost      string        `help:"Route listen address (default: --host)."`
	ClusterPort      int           `help:"Route port; 0 = no cluster."`
	Routes           []string      `help:"Routes to other brokers, e.g. nats://b2:6222,nats://b3:6222."`
	HTTPPort         int           `name:"http-port" help:"Monitoring port for /varz, /routez, /connz; 0 = off."`
	MaxPayload       int32         `help:"Largest message in bytes (0 = 1 MiB)."`
	PingInterval     time.Duration `help:"Ping clients and routes this often (0 = nats-server's defaults)."`
	LameDuckDuration time.Duration `help:"On SIGUSR2, close the clients over this long, then exit (0 = --config's, else 2m)."`
	LameDuckGrace    time.Duration `help:"On SIGUSR2, wait this long before closing the first client; shorter than the duration (0 = --config's, else 10s)."`
	Auth             string        `placeholder:"DIR" help:"Require a credential per role from DIR (created on first start: client.nk, worker.nk, dispatcher.nk, admin.nk), each allowed only its role's subjects; routes authenticate too (docs/auth.md)."`
	AuthWorkers      []string      `placeholder:"ID,..." help:"With --auth, also create these workers' own credentials, DIR/workers/ID.nk, where missing (a fixed fleet's; more with bilancia auth add-worker)."`
	AuthPoll         time.Duration `default:"1s" help:"With --auth, read DIR again this often, for credentials added or removed (-1s = never)."`
	Insecure         bool          `help:"Listen beyond loopback without authentication (refused otherwise)."`
	TLSCert          string        `name:"tls-cert" type:"existingfile" help:"Serve clients over TLS with this certificate."`
	TLSKey           string        `name:"tls-key" type:"existingfile" help:"The key of --tls-cert."`
	TLSCA            string        `name:"tls-ca" type:"existingfile" help:"Also require client certificates signed by this CA."`
	Debug            bool          `help:"Log nats-server debug lines."`
	Metrics          string        `placeholder:"ADDR" help:"Serve Prometheus metrics on http://ADDR/metrics (the broker's figures, and --dispatcher's), e.g. 127.0.0.1:9100 (off by default; beyond loopback it needs --metrics-token-file or --metrics-insecure)."`
	MetricsAuthFlags
	Trace bool `help:"Log nats-server protocol traces."`

	Dispatcher      bool   `help:"Also run a dispatcher in this process, on an in-process connection, set up by the dispatcher flags."`
	Prefix          string `env:"BILANCIA_PREFIX" default:"calc" help:"Subject prefix (of --auth's permissions, and --dispatcher's)."`
	DispatcherFlags `embed:""`
}

func (c *BrokerCmd) Run(g *globals) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(c.Debug || c.Trace)}))
	b, err := broker.New(broker.Config{
		Host: c.Host, Port: c.Port, ServerName: c.Name, ConfigFile: c.Config,
		ClusterName: c.ClusterName, ClusterHost: c.ClusterHost, ClusterPort: c.ClusterPort,
		Routes: c.Routes, HTTPPort: c.HTTPPort, MaxPayload: c.MaxPayload, PingInterval: c.PingInterval,
		LameDuckDuration: c.LameDuckDuration, LameDuckGrace: c.LameDuckGrace,
		AuthDir: c.Auth, AuthWorkers: c.AuthWorkers, AuthPrefix: c.Prefix, AuthPoll: c.AuthPoll, Insecure: c.Insecure,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, TLSCA: c.TLSCA,
		Logger: log, Debug: c.Debug, Trace: c.Trace,
	})
	if errors.Is(err, broker.ErrInsecure) {
		return &exitError{1, err.Error() + ": give it --auth DIR (docs/auth.md) or a --config with authorization, " +
			"listen on 127.0.0.1, or add --insecure to run it open"}
	}
	if err != nil {
		return err
	}
	ms, err := startMetrics(c.Metrics, &c.MetricsAuthFlags)
	if err != nil {
		return err
	}
	defer stopMetrics(ms)
	// Listened to before the broker listens, so that a signal sent once
	// clients can connect does not meet its default action, which is to
	// end the process.
	defer useSignalLog(log)()
	sig := brokerSignals{reload: make(chan struct{}, 1), lameDuck: make(chan struct{}, 1)}
	defer onSignal(reloadConfig, poke(sig.reload))()
	defer onSignal(enterLameDuck, poke(sig.lameDuck))()
	if err := b.Start(g.ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "broker listening on %s", b.ClientURL())
	if u := b.ClusterURL(); u != "" {
		fmt.Fprintf(os.Stderr, ", routes on %s", u)
	}
	if u := b.MonitorURL(); u != "" {
		fmt.Fprintf(os.Stderr, ", monitoring on %s", u)
	}
	fmt.Fprintln(os.Stderr)
	if c.Auth != "" {
		fmt.Fprintf(os.Stderr, "credentials in %s: %s, %s, %s, %s; more with bilancia auth add-client NAME --dir %[1]s, and a worker's own with bilancia auth add-worker ID --dir %[1]s\n",
			c.Auth, broker.ClientCredential, broker.WorkerCredential, broker.DispatcherCredential, broker.AdminCredential)
	}
	stopPprof, err := servePprof(c.Pprof)
	if err != nil {
		b.Shutdown()
		return err
	}
	defer stopPprof()
	var d *runningDispatcher
	if c.Dispatcher {
		if d, err = c.startInside(b); err != nil {
			b.Shutdown()
			return err
		}
	}
	ms.Add(gatherers(b, d, nil)...)
	brokerGone, err := c.serve(g.ctx, b, &d, sig, log)
	if d != nil {
		// The dispatcher drains first, while the broker still carries its
		// last replies; at once if the broker is already gone: no reply
		// could reach a client any more.
		grace := shutdownGrace
		if brokerGone {
			grace = 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		derr := d.stop(ctx)
		cancel()
		if !brokerGone {
			err = derr // else the broker's own end, as without --dispatcher
		}
	}
	b.Shutdown()
	return err
}

// brokerSignals receive SIGHUP and SIGUSR2.
type brokerSignals struct{ reload, lameDuck chan struct{} }

// serve runs the broker until ctx ends (SIGINT, SIGTERM) or it shuts down
// on its own, reloading its configuration on SIGHUP and entering lame duck
// mode on SIGUSR2. In lame duck mode the dispatcher inside, if any, drains
// first: within the grace, before the broker closes the clients that wait
// for its replies; *d is then nil. err is that drain's. Once in lame duck
// mode, the end of ctx no longer cuts it short, as with nats-server: a
// container's stop signal follows its preStop hook at once.
func (c *BrokerCmd) serve(ctx context.Context, b *broker.Broker, d **runningDispatcher, sig brokerSignals, log *slog.Logger) (brokerGone bool, err error) {
	gone := waitChan(b.WaitForShutdown)
	stop := ctx.Done()
	lame := false
	for {
		select {
		case <-stop:
			if !lame {
				return false, err
			}
			log.Info("stop signal in lame duck mode: the broker leaves when its clients are closed")
			stop = nil
		case <-gone:
			return true, err
		case <-sig.reload:
			if rerr := b.Reload(); rerr != nil {
				log.Error("configuration not reloaded: the broker runs on as before", "error", rerr.Error())
			} else if c.Config == "" {
				log.Info("reloaded without --config: only the files of --auth and --tls-* were read again")
			}
		case <-sig.lameDuck:
			lame = true
			b.LameDuck()
			if *d != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.LameDuckGrace())
				err = (*d).stop(dctx)
				cancel()
				*d = nil
			}
		}
	}
}

// startInside starts the dispatcher of --dispatcher on an in-process
// connection to b, with the dispatcher credential of --auth.
func (c *BrokerCmd) startInside(b *broker.Broker) (*runningDispatcher, error) {
	nf := &NATSFlags{NATS: b.ClientURL(), Prefix: c.Prefix}
	if c.Auth != "" {
		nf.NKey = filepath.Join(c.Auth, broker.DispatcherCredential)
	} else if b.AuthRequired() {
		// Refused at once: an in-process connect the broker turns down
		// hangs on the pipe until nats-server's write deadline.
		return nil, &exitError{1, "--dispatcher: this broker's --config requires authentication, which a dispatcher inside it " +
			"does not bring; use --auth DIR instead, or run bilancia dispatcher as a process of its own, with credentials"}
	}
	d, err := c.startDispatcher(nf, b.Server(), os.Stderr)
	if de := (*dialError)(nil); errors.As(err, &de) {
		return nil, &exitError{1, "--dispatcher: could not connect to its broker: " + err.Error()}
	}
	return d, err
}

func logLevel(debug bool) slog.Level {
	if debug {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func waitChan(f func()) <-chan struct{} {
	ch := make(chan struct{})
	go func() { f(); close(ch) }()
	return ch
}
