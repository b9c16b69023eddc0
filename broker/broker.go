// Package broker runs an embedded nats-server, so that a local Bilancia needs
// no separate NATS installation, and brokers on several hosts can form a NATS
// cluster through routes.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Errors returned by New and Start.
var (
	// ErrInvalidConfig reports a Config that cannot describe a server.
	ErrInvalidConfig = errors.New("broker: invalid config")
	// ErrStart reports a server that did not become ready for connections.
	ErrStart = errors.New("broker: start failed")
	// ErrClosed reports a Start after Shutdown.
	ErrClosed = errors.New("broker: shut down")
	// ErrStarted reports a second Start.
	ErrStarted = errors.New("broker: already started")
)

// Broker is an embedded nats-server. Create it with New, then Start it;
// Shutdown stops it.
type Broker struct {
	opts   *server.Options // template for each server.Server built
	logger *slog.Logger
	debug  bool
	trace  bool
	// fallback is whether a taken client port may be replaced by a random one.
	fallback bool

	mu       sync.Mutex
	srv      *server.Server
	log      *logAdapter // srv's logger, holding its fatal error
	started  bool
	closed   bool
	lameDuck bool // LameDuck was called
	urls     struct{ client, cluster, monitor string }
	srvOpts  *server.Options // what srv runs with, the base of a reload

	cfg Config // what New was given, built again by Reload

	// reloadMu serialises the changes of srvOpts: Reload, and the auth
	// directory's watch (reloadAuth), whose users it also keeps current.
	reloadMu sync.Mutex
	auth     *authWatch // nil without Config.AuthDir; used under reloadMu

	watch    sync.WaitGroup // the goroutine noticing the server going down
	done     chan struct{}
	doneOnce sync.Once
}

// New validates cfg and builds the server, without binding any port. Call
// Shutdown to release it even if Start is never called.
func New(cfg Config) (*Broker, error) {
	opts, err := buildOptions(cfg)
	if err != nil {
		return nil, err
	}
	aw, err := secure(cfg, opts)
	if err != nil {
		return nil, err
	}
	b := &Broker{
		cfg:      cfg,
		auth:     aw,
		opts:     opts,
		logger:   cfg.Logger,
		debug:    opts.Debug,
		trace:    opts.Trace,
		fallback: cfg.PortFallback,
		done:     make(chan struct{}),
	}
	// Building the server now surfaces nats-server's own validation here
	// rather than at Start.
	if b.srv, b.log, err = b.newServer(opts.Clone()); err != nil {
		return nil, err
	}
	return b, nil
}

// newServer builds a server whose log lines go to b.logger and whose fatal
// errors are captured, since an embedded server must not exit the process.
// b.mu is held on entry, or b is not shared yet.
func (b *Broker) newServer(opts *server.Options) (*server.Server, *logAdapter, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	la := &logAdapter{l: b.logger}
	srv.SetLoggerV2(la, b.debug, b.trace, false)
	b.srvOpts = opts
	return srv, la, nil
}

// Start binds the listeners and waits until the server accepts clients (and
// routes, if clustered), until ctx's deadline or DefaultStartTimeout. A Broker
// whose Start failed is shut down.
func (b *Broker) Start(ctx context.Context) error {
	var srv *server.Server
	err := ctx.Err()
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrStart, err)
	} else {
		var la *logAdapter
		if srv, la, err = b.start(); err == nil {
			err = waitReady(ctx, srv, la)
		}
	}
	if err != nil {
		if !errors.Is(err, ErrStarted) {
			b.Shutdown()
		}
		return err
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if a, ok := srv.Addr().(*net.TCPAddr); ok {
		b.urls.client = serverURL(clientScheme(srv), b.opts.Host, a.Port)
	}
	if a := srv.ClusterAddr(); a != nil {
		b.urls.cluster = serverURL("nats-route", b.opts.Cluster.Host, a.Port)
	}
	if a := srv.MonitorAddr(); a != nil {
		b.urls.monitor = serverURL("http", b.opts.HTTPHost, a.Port)
	}
	b.watch.Add(1)
	go func() {
		defer b.watch.Done()
		srv.WaitForShutdown()
		b.markDone()
	}()
	if b.auth != nil && b.auth.every > 0 {
		b.watch.Add(1)
		go b.watchAuth()
	}
	return nil
}

// start binds the listeners under b.mu, so that a concurrent Shutdown either
// comes first and Start fails, or sees the server it must stop.
func (b *Broker) start() (*server.Server, *logAdapter, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.closed:
		return nil, nil, ErrClosed
	case b.started:
		return nil, nil, ErrStarted
	}
	b.started = true

	port := b.opts.Port
	if b.fallback && port != server.RANDOM_PORT && !portFree(b.opts.Host, port) {
		port = server.RANDOM_PORT
	}
	for {
		if port != b.opts.Port {
			opts := b.opts.Clone()
			opts.Port = port
			srv, la, err := b.newServer(opts)
			if err != nil {
				return nil, nil, err
			}
			b.srv, b.log = srv, la
		}
		b.srv.Start()
		// A nil Addr means the client listener failed; retry once when the
		// port was taken between the check above and the listen.
		if b.srv.Addr() != nil || !b.fallback || port == server.RANDOM_PORT {
			return b.srv, b.log, nil
		}
		b.srv.Shutdown()
		port = server.RANDOM_PORT
	}
}

// waitReady polls in short slices so that a fatal listen error or a
// cancelled ctx ends the wait at once instead of at the deadline.
func waitReady(ctx context.Context, srv *server.Server, la *logAdapter) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultStartTimeout)
	}
	for {
		if err := la.fatal(); err != nil {
			return fmt.Errorf("%w: %w", ErrStart, err)
		}
		if srv.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		if !srv.Running() {
			return fmt.Errorf("%w: %w", ErrStart, ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrStart, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: not ready for connections by the deadline", ErrStart)
		}
	}
}

// portFree reports whether host:port can be listened on now.
func portFree(host string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func clientScheme(srv *server.Server) string {
	if u, err := url.Parse(srv.ClientURL()); err == nil && u.Scheme != "" {
		return u.Scheme
	}
	return "nats"
}

// serverURL turns a listen address into one a local client can dial: a
// wildcard listen address is reached through loopback.
func serverURL(scheme, host string, port int) string {
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port))
}

// ClientURL is the URL clients dial, with the port actually bound; "" before
// Start.
func (b *Broker) ClientURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urls.client
}

// ClusterURL is the URL other brokers on this host can list in their
// Routes (a wildcard listen address is reported as loopback); "" when not
// clustered.
func (b *Broker) ClusterURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urls.cluster
}

// MonitorURL is the base URL of the monitoring endpoints; "" when HTTPPort
// is off.
func (b *Broker) MonitorURL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urls.monitor
}

// Server is the underlying nats-server, for what this package does not wrap.
// Start may replace it when it falls back to another port.
func (b *Broker) Server() *server.Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv
}

// AuthRequired tells whether the running broker refuses a client that
// brings no credentials: its configuration asks for authentication and
// names no no_auth_user.
func (b *Broker) AuthRequired() bool {
	srv := b.Server()
	if srv == nil {
		return false
	}
	v, err := srv.Varz(nil)
	b.mu.Lock()
	noAuthUser := b.srvOpts.NoAuthUser
	b.mu.Unlock()
	return err == nil && v.AuthRequired && noAuthUser == ""
}

// NumRoutes is the number of other brokers this one is routed to. It counts
// servers, not connections: nats-server pools several route connections
// per peer.
func (b *Broker) NumRoutes() int {
	srv := b.Server()
	if srv == nil {
		return 0
	}
	return srv.NumRemotes()
}

// Shutdown stops the server, closing client and route connections, and
// returns once it is down. It is safe to call more than once and
// concurrently, and before Start.
func (b *Broker) Shutdown() {
	b.mu.Lock()
	b.closed = true
	srv := b.srv
	b.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	b.watch.Wait()
	b.markDone()
}

// WaitForShutdown blocks until the broker is down, whether by Shutdown or
// because nats-server stopped on its own (e.g. lame duck mode).
func (b *Broker) WaitForShutdown() {
	<-b.done
}

func (b *Broker) markDone() {
	b.doneOnce.Do(func() { close(b.done) })
}

// logAdapter implements server.Logger on top of slog, and remembers the first
// fatal error: nats-server calls Fatalf expecting the process to exit, an
// embedded server must report it to Start instead.
type logAdapter struct {
	l *slog.Logger

	mu       sync.Mutex
	fatalErr error
}

func (a *logAdapter) log(level slog.Level, format string, v []any) {
	if a.l == nil || !a.l.Enabled(context.Background(), level) {
		return
	}
	a.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (a *logAdapter) fatal() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatalErr
}

func (a *logAdapter) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.log(slog.LevelWarn, format, v) }
func (a *logAdapter) Errorf(format string, v ...any)  { a.log(slog.LevelError, format, v) }
func (a *logAdapter) Debugf(format string, v ...any)  { a.log(slog.LevelDebug, format, v) }
func (a *logAdapter) Tracef(format string, v ...any)  { a.log(slog.LevelDebug, format, v) }

func (a *logAdapter) Fatalf(format string, v ...any) {
	a.mu.Lock()
	if a.fatalErr == nil {
		a.fatalErr = fmt.Errorf(format, v...)
	}
	a.mu.Unlock()
	a.log(slog.LevelError, format, v)
}
