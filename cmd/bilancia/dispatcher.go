package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dashboard"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/logfile"
)

// DispatcherFlags configure a dispatcher: in its own process, inside the
// broker (broker --dispatcher) or in up.
type DispatcherFlags struct {
	DashboardAuthFlags
	ID                string        `help:"Dispatcher id (default: random)."`
	Subject           string        `help:"Take requests on this subject instead of <prefix>.request."`
	Heartbeat         time.Duration `default:"1s" help:"Workers' heartbeat interval."`
	DeadAfter         time.Duration `help:"Mark a silent worker down after this long (default 3 heartbeats)."`
	RequestTimeout    time.Duration `default:"35s" help:"Deadline of a request that carries none (Calc-Timeout-Ms), e.g. from nats req: long enough for the longest op a stock worker accepts."`
	MaxRequestTimeout time.Duration `default:"5m" help:"Cap on the deadline a client asks for (Calc-Timeout-Ms); a longer one is cut to it."`
	AttemptTimeout    time.Duration `default:"1s" help:"Also try the next worker when one that sends no progress messages is silent this long."`
	HedgeAfter        time.Duration `help:"Also try the next worker when one still making progress has held a request this long (0 = never)."`
	MinHedge          time.Duration `default:"250ms" help:"Least hedge a client may ask for with Calc-Hedge-Ms; a lower one is raised to it."`
	HoldFor           time.Duration `help:"When every live worker falls silent at once (a partition?), hold requests this long before answering 503 (default 2 × dead-after; negative = never)."`
	MaxAttempts       int           `default:"3" help:"Workers tried per request on silence, hedges or 5xx."`
	MaxInflight       int           `default:"10000" help:"Requests in flight before answering 503."`
	MaxInflightBytes  int64         `default:"268435456" help:"Bytes of requests in flight (payloads, headers, overhead) before answering 503."`
	MaxClientInflight int           `help:"Requests one client may have in flight through this dispatcher before answering it 503 (0 = no bound)."`
	Strategy          string        `default:"round-robin" enum:"round-robin,peak-ewma,least-inflight" help:"Balancing strategy: round-robin (cyclic, passing over slow, failing and full workers), peak-ewma (two random draws, the lower latency × pending wins) or least-inflight."`
	EjectAfter        int           `default:"5" help:"Eject a worker after this many timeouts or 5xx in a row (-1 = never)."`
	EjectFor          time.Duration `default:"5s" help:"Base ejection time; it grows with each ejection."`
	Log               string        `default:"loadbalancer.log" help:"Log file (JSON lines); - for standard output. SIGUSR1 reopens it."`
	LogRequests       bool          `default:"true" negatable:"" help:"Log every request."`
	Pprof             string        `help:"Serve Go's pprof profiles on this address, e.g. 127.0.0.1:6060 (off by default)."`
	ReplyPrefix       []string      `placeholder:"PREFIX" help:"Also answer requests whose reply subject is under this inbox prefix, besides _INBOX, _INBOX_CLIENT and _INBOX_WORKER (repeatable; never under the subject prefix or $)."`
	HTTP              string        `name:"http" placeholder:"ADDR" help:"Serve the live dashboard on this address, e.g. 127.0.0.1:8080 (a missing host means 127.0.0.1; beyond loopback it needs --http-token-file or --http-tls-ca, or --http-insecure; up serves one by default)."`
}

func (f *DispatcherFlags) config(d *dispatcher.Config) {
	d.ID = f.ID
	d.Subject = f.Subject
	d.Heartbeat = f.Heartbeat
	d.DeadAfter = f.DeadAfter
	d.RequestTimeout = f.RequestTimeout
	d.MaxRequestTimeout = f.MaxRequestTimeout
	d.InboxPrefixes = f.ReplyPrefix
	d.AttemptTimeout = f.AttemptTimeout
	d.HedgeAfter = f.HedgeAfter
	d.HoldFor = f.HoldFor
	d.MaxAttempts = f.MaxAttempts
	d.MaxInflight = f.MaxInflight
	d.MaxInflightBytes = f.MaxInflightBytes
	d.MaxClientInflight = f.MaxClientInflight
	d.MinHedge = f.MinHedge
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

// runningDispatcher is a dispatcher started by startDispatcher, with what
// it owns: its connections and its log file, which stop closes after
// Shutdown.
type runningDispatcher struct {
	*dispatcher.Dispatcher
	events *slog.Logger // its event log, which the roles beside it share in up
	conns  []*nats.Conn
	lf     *logfile.File
	// stopReopen ends the reopening of lf on SIGUSR1.
	stopReopen func()
	dash       *dashboard.Server // nil without --http
}

// dialError is a connect of startDispatcher that failed, told apart from
// the dispatcher's own errors so that broker --dispatcher can say which
// connection it was.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// startDispatcher starts a dispatcher from the flags: it opens the log
// (the events also go to echo, if set), connects and starts it. With
// inproc set it has one in-process connection to that server; otherwise
// it connects to nf's URLs and takes the workers' heartbeats on a second,
// paced connection. The dispatcher role, broker --dispatcher and up all
// start theirs here.
func (f *DispatcherFlags) startDispatcher(nf *NATSFlags, inproc nats.InProcessConnProvider, echo io.Writer) (*runningDispatcher, error) {
	if err := f.checkDashboard(); err != nil {
		return nil, err
	}
	events, lf, err := f.openLog(echo)
	if err != nil {
		return nil, err
	}
	r := &runningDispatcher{events: events, lf: lf}
	r.stopReopen = reopenOnSignal(lf, f.Log, events)
	connect := func(name string, extra ...nats.Option) (*nats.Conn, error) {
		nc, err := nf.connect(name, events, extra...)
		if err != nil {
			return nil, &dialError{err}
		}
		r.conns = append(r.conns, nc)
		return nc, nil
	}
	cfg := dispatcher.Config{Prefix: nf.Prefix, Logger: events, RequestLog: lf}
	f.config(&cfg)
	if nf.InboxPrefix != "" {
		cfg.InboxPrefixes = append(cfg.InboxPrefixes[:len(cfg.InboxPrefixes):len(cfg.InboxPrefixes)], nf.InboxPrefix)
	}
	if inproc != nil {
		// One connection for requests, replies and heartbeats: in
		// process, heartbeats cost no system calls, so a paced connection
		// would save little; and a paced pipe would stall the broker's
		// writes into it.
		cfg.Conn, err = connect("bilancia-dispatcher", nats.InProcessServer(inproc))
	} else if cfg.Conn, err = connect("bilancia-dispatcher"); err == nil {
		// Heartbeats on a connection of their own, read in batches: with
		// a large fleet, reading them one by one is most of an idle
		// dispatcher's CPU.
		cfg.HeartbeatConn, err = connect("bilancia-dispatcher-heartbeats", nats.SetCustomDialer(dispatcher.PacedDialer{}))
		if err == nil {
			// Hand-overs, status requests and hellos on a third: a
			// flood of them cannot slow requests, nor get the request
			// connection cut off as a slow consumer.
			cfg.SideConn, err = connect("bilancia-dispatcher-side")
		}
	}
	if err == nil {
		r.Dispatcher, err = dispatcher.New(cfg)
	}
	if err == nil {
		err = r.Start()
	}
	if err == nil && f.HTTP != "" {
		r.dash, err = startDashboard(r, f.HTTP, nf.Prefix, &f.DashboardAuthFlags)
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// stop drains the dispatcher until ctx ends, then closes its connections
// and its log.
func (r *runningDispatcher) stop(ctx context.Context) error {
	err := r.Shutdown(ctx)
	r.close()
	return err
}

func (r *runningDispatcher) close() {
	if r.dash != nil {
		_ = r.dash.Close()
	}
	for _, nc := range r.conns {
		nc.Close()
	}
	r.stopReopen()
	r.lf.Close()
}

// DispatcherCmd runs a dispatcher.
type DispatcherCmd struct {
	NATSFlags
	DispatcherFlags
	Procs   int    `default:"1" help:"Threads running its Go code (GOMAXPROCS; 0 = one per core; $GOMAXPROCS, when set, wins)."`
	Metrics string `placeholder:"ADDR" help:"Serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9100 (off by default; beyond loopback it needs --metrics-token-file or --metrics-insecure)."`
	MetricsAuthFlags
}

func (c *DispatcherCmd) Run(g *globals) error {
	if c.Procs < 0 {
		return fmt.Errorf("--procs %d must not be negative", c.Procs)
	}
	if c.Procs > 0 && os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(c.Procs)
	}
	stopPprof, err := servePprof(c.Pprof)
	if err != nil {
		return err
	}
	defer stopPprof()
	ms, err := startMetrics(c.Metrics, &c.MetricsAuthFlags)
	if err != nil {
		return err
	}
	defer stopMetrics(ms)
	r, err := c.startDispatcher(&c.NATSFlags, nil, os.Stderr)
	if err != nil {
		return err
	}
	defer useSignalLog(r.events)()
	ms.Add(r.Registry())
	<-g.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return r.stop(ctx)
}
