package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/logfile"
)

// shutdownGrace bounds a role's drain after SIGTERM.
const shutdownGrace = 30 * time.Second

// BrokerCmd runs an embedded nats-server.
type BrokerCmd struct {
	Host         string        `default:"127.0.0.1" help:"Client listen address (0.0.0.0 for all)."`
	Port         int           `default:"4222" help:"Client port (-1 = random)."`
	Name         string        `help:"Server name (default: generated)."`
	Config       string        `type:"existingfile" help:"A nats-server configuration file; flags given explicitly override it."`
	ClusterName  string        `help:"Cluster name (default bilancia when clustered)."`
	ClusterHost  string        `help:"Route listen address (default: --host)."`
	ClusterPort  int           `help:"Route port; 0 = no cluster."`
	Routes       []string      `help:"Routes to other brokers, e.g. nats://b2:6222,nats://b3:6222."`
	HTTPPort     int           `name:"http-port" help:"Monitoring port for /varz, /routez, /connz; 0 = off."`
	MaxPayload   int32         `help:"Largest message in bytes (0 = 1 MiB)."`
	PingInterval time.Duration `help:"Ping clients and routes this often, to notice a peer cut off without a reset (0 = nats-server's defaults: 2m clients, 30s routes)."`
	Debug        bool          `help:"Log nats-server debug lines."`
	Trace        bool          `help:"Log nats-server protocol traces."`

	Dispatcher      bool   `help:"Also run a dispatcher in this process, reaching the broker without sockets: a request's detour through it then costs far less latency (see BENCHMARKS.md). The dispatcher flags below configure it; run one per broker of a cluster."`
	Prefix          string `default:"calc" help:"Subject prefix (with --dispatcher)."`
	DispatcherFlags `embed:""`
}

func (c *BrokerCmd) Run(g *globals) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(c.Debug || c.Trace)}))
	b, err := broker.New(broker.Config{
		Host: c.Host, Port: c.Port, ServerName: c.Name, ConfigFile: c.Config,
		ClusterName: c.ClusterName, ClusterHost: c.ClusterHost, ClusterPort: c.ClusterPort,
		Routes: c.Routes, HTTPPort: c.HTTPPort, MaxPayload: c.MaxPayload, PingInterval: c.PingInterval,
		Logger: log, Debug: c.Debug, Trace: c.Trace,
	})
	if err != nil {
		return err
	}
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
	if c.Pprof != "" {
		stop, err := servePprof(c.Pprof)
		if err != nil {
			b.Shutdown()
			return err
		}
		defer stop()
	}
	var stopDispatcher func(brokerGone bool) error
	if c.Dispatcher {
		if stopDispatcher, err = c.startDispatcher(b); err != nil {
			b.Shutdown()
			return err
		}
	}
	brokerGone := false
	select {
	case <-g.ctx.Done():
	case <-waitChan(b.WaitForShutdown):
		brokerGone = true
	}
	if stopDispatcher != nil {
		// The dispatcher drains first, while the broker still carries its
		// last replies.
		err = stopDispatcher(brokerGone)
	}
	b.Shutdown()
	return err
}

// startDispatcher runs a dispatcher on an in-process connection to b and
// returns the function that drains and stops it, at once if the broker is
// already gone: no reply could reach a client any more.
func (c *BrokerCmd) startDispatcher(b *broker.Broker) (stop func(brokerGone bool) error, err error) {
	if b.AuthRequired() {
		// Refused at once: an in-process connect the broker turns down
		// hangs on the pipe until nats-server's 10 s write deadline.
		return nil, &exitError{1, "--dispatcher: this broker requires authentication, which a dispatcher inside it " +
			"does not bring; run bilancia dispatcher as a process of its own, with credentials"}
	}
	events, lf, err := c.openLog(os.Stderr)
	if err != nil {
		return nil, err
	}
	nf := NATSFlags{NATS: b.ClientURL(), Prefix: c.Prefix}
	// One connection for requests, replies and heartbeats: in process,
	// heartbeats cost no system calls, so the paced connection a
	// dispatcher process reads them on would save little; and a paced
	// pipe would stall the broker's writes into it.
	nc, err := nf.connect("bilancia-dispatcher", events, nats.InProcessServer(b.Server()))
	if err != nil {
		lf.Close()
		return nil, &exitError{1, "--dispatcher: could not connect to its broker: " + err.Error()}
	}
	cfg := dispatcher.Config{Conn: nc, Prefix: c.Prefix, Logger: events, RequestLog: lf}
	c.config(&cfg)
	d, err := dispatcher.New(cfg)
	if err == nil {
		err = d.Start()
	}
	if err != nil {
		nc.Close()
		lf.Close()
		return nil, err
	}
	return func(brokerGone bool) error {
		grace := shutdownGrace
		if brokerGone {
			grace = 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		err := d.Shutdown(ctx)
		nc.Close()
		lf.Close()
		if brokerGone {
			return nil // the broker's own end, as without --dispatcher
		}
		return err
	}, nil
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

// DispatcherFlags configure a dispatcher, in its own process or in up.
type DispatcherFlags struct {
	ID             string        `help:"Dispatcher id (default: random)."`
	Subject        string        `help:"Take requests on this subject instead of <prefix>.request, to run a dispatcher with other settings beside the usual ones, on the same workers."`
	Heartbeat      time.Duration `default:"1s" help:"Workers' heartbeat interval."`
	DeadAfter      time.Duration `help:"Mark a silent worker down after this long (default 3 heartbeats)."`
	RequestTimeout time.Duration `default:"5s" help:"Deadline of a request that carries none."`
	AttemptTimeout time.Duration `default:"1s" help:"Also try the next worker when one is silent this long."`
	MaxAttempts    int           `default:"3" help:"Workers tried per request on timeouts."`
	MaxInflight    int           `default:"10000" help:"Requests in flight before answering 503."`
	Strategy       string        `default:"round-robin" enum:"round-robin,least-inflight" help:"Balancing strategy: round-robin or least-inflight."`
	EjectAfter     int           `default:"5" help:"Eject a worker after this many timeouts or 5xx in a row (-1 = never)."`
	EjectFor       time.Duration `default:"5s" help:"Base ejection time; it grows with each ejection."`
	Log            string        `default:"loadbalancer.log" help:"Log file (JSON lines)."`
	LogRequests    bool          `default:"true" negatable:"" help:"Log every request."`
	Pprof          string        `help:"Serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (off by default)."`
}

func (f *DispatcherFlags) config(d *dispatcher.Config) {
	d.ID = f.ID
	d.Subject = f.Subject
	d.Heartbeat = f.Heartbeat
	d.DeadAfter = f.DeadAfter
	d.RequestTimeout = f.RequestTimeout
	d.AttemptTimeout = f.AttemptTimeout
	d.MaxAttempts = f.MaxAttempts
	d.MaxInflight = f.MaxInflight
	d.Strategy = f.Strategy
	d.Outlier = dispatcher.OutlierConfig{Consecutive: f.EjectAfter, BaseEjection: f.EjectFor}
	d.LogRequests = f.LogRequests
}

// openLog opens the log file and returns the event logger (file and, if
// echo is set, stderr) and the file, where request lines go directly.
func (f *DispatcherFlags) openLog(echo io.Writer) (events *slog.Logger, lf *logfile.File, err error) {
	lf, err = logfile.Open(f.Log, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open log: %w", err)
	}
	file := slog.NewJSONHandler(lf, nil)
	events = slog.New(file)
	if echo != nil {
		events = slog.New(slog.NewMultiHandler(file, slog.NewTextHandler(echo, nil)))
	}
	return events, lf, nil
}

// DispatcherCmd runs a dispatcher.
type DispatcherCmd struct {
	NATSFlags
	DispatcherFlags
	Procs int `default:"1" help:"Threads running its Go code at once (GOMAXPROCS; 0 = one per core; the GOMAXPROCS variable, when set, wins). Its hot path is serial, one connection's read loop and one lock: on a loaded machine one thread saves the hand-offs between threads (see BENCHMARKS.md). Run more dispatchers to use more cores."`
}

func (c *DispatcherCmd) Run(g *globals) error {
	if c.Procs < 0 {
		return fmt.Errorf("--procs %d must not be negative", c.Procs)
	}
	if c.Procs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(c.Procs)
	}
	events, lf, err := c.openLog(os.Stderr)
	if err != nil {
		return err
	}
	defer lf.Close()
	nc, err := c.connect("bilancia-dispatcher", events)
	if err != nil {
		return &exitError{1, err.Error()}
	}
	defer nc.Close()
	// Heartbeats on a connection of their own, read in 10ms batches: with
	// a large fleet, reading them one by one is most of an idle
	// dispatcher's CPU.
	hb, err := c.connect("bilancia-dispatcher-heartbeats", events, nats.SetCustomDialer(dispatcher.PacedDialer{}))
	if err != nil {
		return &exitError{1, err.Error()}
	}
	defer hb.Close()
	cfg := dispatcher.Config{Conn: nc, HeartbeatConn: hb, Prefix: c.Prefix, Logger: events, RequestLog: lf}
	c.config(&cfg)
	if c.Pprof != "" {
		stop, err := servePprof(c.Pprof)
		if err != nil {
			return err
		}
		defer stop()
	}
	d, err := dispatcher.New(cfg)
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		return err
	}
	<-g.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return d.Shutdown(ctx)
}

// WorkerFlags configure a calc worker.
type WorkerFlags struct {
	Concurrency int           `default:"16" help:"Requests computed at once."`
	Delay       time.Duration `help:"Add this delay to every request (simulates a slow worker)."`
	MaxSleep    time.Duration `default:"30s" help:"Upper bound of the sleep op."`
	MaxSpin     time.Duration `default:"10s" help:"Upper bound of the spin op."`
	ServeDirect bool          `help:"Also serve <prefix>.direct in queue group workers (for bench --compare)."`
}

func (f *WorkerFlags) config(id, prefix string, heartbeat time.Duration) calcworker.Config {
	return calcworker.Config{
		ID: id, Prefix: prefix, Heartbeat: heartbeat, Concurrency: f.Concurrency,
		ServeDirect: f.ServeDirect,
		Env:         calc.Env{MaxSleep: f.MaxSleep, MaxSpin: f.MaxSpin, Delay: f.Delay},
	}
}

// WorkerCmd runs a calc worker.
type WorkerCmd struct {
	NATSFlags
	WorkerFlags
	ID         string        `help:"Worker id (default: w- and 4 random hex digits)."`
	Heartbeat  time.Duration `default:"1s" help:"Heartbeat interval (jittered by 10%)."`
	Replicas   int           `default:"1" help:"Run this many workers in one process on one connection, with ids <id>-0, <id>-1, ... (to simulate a large fleet); they share --concurrency compute goroutines."`
	DrainGrace time.Duration `default:"200ms" help:"On SIGTERM, keep serving this long after announcing draining, before no longer listening: dispatchers read heartbeats in 10ms batches, on a connection of their own, so the announcement can trail a request already on its way."`
	Pprof      string        `help:"Serve Go's pprof profiles on this address, e.g. 127.0.0.1:6061 (off by default)."`
}

func (c *WorkerCmd) Run(g *globals) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if c.Replicas < 1 || c.Replicas > 10000 {
		return fmt.Errorf("--replicas must be between 1 and 10000")
	}
	id := c.ID
	if id == "" {
		id = calcworker.NewID()
	}
	nc, err := c.connect("bilancia-worker "+id, log)
	if err != nil {
		return &exitError{1, err.Error()}
	}
	defer nc.Close()
	if c.Pprof != "" {
		stop, err := servePprof(c.Pprof)
		if err != nil {
			return err
		}
		defer stop()
	}
	var shared *calcworker.Shared
	if c.Replicas > 1 {
		shared = calcworker.NewShared(c.Concurrency, 0)
		defer func() {
			nc.Close() // nothing more arrives for the pool
			shared.Close()
		}()
	}
	var workers []*calcworker.Worker
	for i := range c.Replicas {
		wid := id
		if c.Replicas > 1 {
			wid = fmt.Sprintf("%s-%d", id, i)
		}
		cfg := c.config(wid, c.Prefix, c.Heartbeat)
		cfg.Conn, cfg.DrainGrace, cfg.Shared = nc, c.DrainGrace, shared
		cfg.OnError = func(err error) { log.Warn(err.Error()) }
		w, err := calcworker.New(cfg)
		if err != nil {
			return err
		}
		if err := w.Start(); err != nil {
			return err
		}
		workers = append(workers, w)
	}
	if c.Replicas == 1 {
		log.Info("worker started", "id", id, "subject", workers[0].Subject(), "concurrency", c.Concurrency)
	} else {
		log.Info("workers started", "ids", fmt.Sprintf("%s-0..%s-%d", id, id, c.Replicas-1), "concurrency", c.Concurrency)
	}
	<-g.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	for i, w := range workers {
		log.Info("worker draining", "id", w.ID(), "inflight", w.Stats().Inflight)
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Shutdown(ctx) }()
	}
	wg.Wait()
	for _, w := range workers {
		st := w.Stats()
		log.Info("worker stopped", "id", w.ID(), "served", st.Served, "errors", st.Errors)
	}
	return errors.Join(errs...)
}
