package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/calcworker/calc"
)

// WorkerFlags configure a calc worker, in its own process or in up.
type WorkerFlags struct {
	Concurrency int           `default:"16" help:"Requests computed at once."`
	Delay       time.Duration `help:"Add this delay to every request (simulates a slow worker)."`
	FailRate    float64       `help:"Answer this share of requests, 0 to 1, with a 500 at once (simulates a failing worker)."`
	Progress    time.Duration `default:"100ms" help:"Interval of progress messages for requests held (negative = none: a worker of another kind, for tests)."`
	MaxSleep    time.Duration `default:"30s" help:"Upper bound of the sleep op."`
	MaxSpin     time.Duration `default:"10s" help:"Upper bound of the spin op."`
	ServeDirect bool          `help:"Also serve <prefix>.direct in queue group workers (for bench --compare)."`
}

// workerPlan says which workers startWorkers starts and how they connect.
type workerPlan struct {
	ids        []string // a worker each; "" = a random id
	prefix     string
	heartbeat  time.Duration
	drainGrace time.Duration
	log        *slog.Logger // hears the workers' asynchronous errors
	// connect dials a connection: one for every worker, or with oneConn
	// one that they share, along with --concurrency compute goroutines
	// when they are several (worker --replicas, simulating a fleet).
	connect func() (*nats.Conn, error)
	oneConn bool
	metrics *calcworker.Metrics // nil: none
	// inboxPrefixes: the reply subjects' prefixes accepted beyond
	// wire.DefaultInboxPrefixes (calcworker.Config.InboxPrefixes).
	inboxPrefixes []string
}

// workerSet is workers started by startWorkers, with what they own.
type workerSet struct {
	workers []*calcworker.Worker
	conns   []*nats.Conn
	shared  *calcworker.Shared
}

// startWorkers starts the workers of p from the flags. The worker role
// (with --replicas) and up start theirs here. It refuses ids a live
// worker has, all named in one error.
func (f *WorkerFlags) startWorkers(p workerPlan) (*workerSet, error) {
	s := &workerSet{}
	ids := make([]string, len(p.ids))
	for i, id := range p.ids {
		if ids[i] = id; id == "" {
			ids[i] = calcworker.NewID()
		}
	}
	fail := func(err error) (*workerSet, error) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // what started stops at once
		_ = s.stop(ctx, nil)
		return nil, err
	}
	var nc *nats.Conn
	if p.oneConn {
		var err error
		if nc, err = p.connect(); err != nil {
			return nil, err
		}
		s.conns = append(s.conns, nc)
		if len(ids) > 1 {
			s.shared = calcworker.NewShared(f.Concurrency, 0)
		}
	}
	// One check for every worker of a connection, rather than one each:
	// a fleet of replicas waits once.
	claimWait := time.Duration(0)
	if p.oneConn {
		if err := calcworker.CheckIDs(context.Background(), nc, p.prefix, ids); err != nil {
			return fail(idTaken(err))
		}
		claimWait = -1
	}
	for _, id := range ids {
		if !p.oneConn {
			var err error
			if nc, err = p.connect(); err != nil {
				return fail(err)
			}
			s.conns = append(s.conns, nc)
		}
		w, err := calcworker.New(calcworker.Config{
			Conn: nc, ID: id, Prefix: p.prefix, Heartbeat: p.heartbeat, Concurrency: f.Concurrency, Progress: f.Progress,
			ServeDirect: f.ServeDirect, InboxPrefixes: p.inboxPrefixes, DrainGrace: p.drainGrace, Shared: s.shared, Metrics: p.metrics, ClaimWait: claimWait,
			FailRate: f.FailRate,
			Env:      calc.Env{MaxSleep: f.MaxSleep, MaxSpin: f.MaxSpin, Delay: f.Delay},
			OnError:  func(err error) { p.log.Warn(err.Error()) },
		})
		if err == nil {
			err = w.Start()
		}
		if err != nil {
			return fail(idTaken(err))
		}
		s.workers = append(s.workers, w)
	}
	return s, nil
}

// idTaken says what to do about a live id; other errors pass unchanged.
func idTaken(err error) error {
	if !errors.Is(err, calcworker.ErrIDTaken) {
		return err
	}
	return fmt.Errorf("%s: stop it or choose another --id", strings.TrimPrefix(err.Error(), "calcworker: "))
}

// stop drains the workers together until ctx ends, then closes their
// connections. A non-nil log hears each worker's draining and end.
func (s *workerSet) stop(ctx context.Context, log *slog.Logger) error {
	var wg sync.WaitGroup
	errs := make([]error, len(s.workers))
	for i, w := range s.workers {
		if log != nil {
			log.Info("worker draining", "id", w.ID(), "inflight", w.Stats().Inflight)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w.Shutdown(ctx) }()
	}
	wg.Wait()
	if log != nil {
		for _, w := range s.workers {
			st := w.Stats()
			log.Info("worker stopped", "id", w.ID(), "served", st.Served, "errors", st.Errors, "handed_over", st.HandedOver)
		}
	}
	for _, nc := range s.conns {
		nc.Close() // nothing more arrives for the shared pool
	}
	if s.shared != nil {
		s.shared.Close()
	}
	return errors.Join(errs...)
}

// idsOfCredential takes --id and --replicas from a worker's own
// credential (bilancia auth add-worker) where they are not given, and
// refuses ids the credential does not act for: the broker would refuse
// each of their messages.
func (c *WorkerCmd) idsOfCredential() error {
	if c.NKey == "" {
		return nil
	}
	name, replicas, err := broker.WorkerOf(c.NKey)
	if err != nil || name == "" {
		return err
	}
	if c.ID == "" {
		c.ID = name
	}
	if c.Replicas == 1 && replicas > 1 {
		c.Replicas = replicas
	}
	if c.ID != name || c.Replicas > 1 && c.Replicas > replicas || c.Replicas == 1 && replicas > 1 {
		return fmt.Errorf("--nkey %s acts only for worker %s: run it with --id %s --replicas %d (or fewer replicas), or make another with bilancia auth add-worker",
			c.NKey, describeIDs(name, replicas), name, replicas)
	}
	return nil
}

// describeIDs names the ids of a worker credential.
func describeIDs(name string, replicas int) string {
	if replicas <= 1 {
		return name
	}
	return fmt.Sprintf("%s-0 to %[1]s-%d", name, replicas-1)
}

// WorkerCmd runs a calc worker.
type WorkerCmd struct {
	NATSFlags
	WorkerFlags
	ID          string        `help:"Worker id (default: w- and 16 random hex digits). A live worker's id is refused."`
	Heartbeat   time.Duration `default:"1s" help:"Heartbeat interval (jittered by 10%)."`
	Replicas    int           `default:"1" help:"Run this many workers in this process, as <id>-0, <id>-1 and so on."`
	DrainGrace  time.Duration `default:"200ms" help:"On SIGTERM, keep serving this long after announcing draining."`
	ReplyPrefix []string      `placeholder:"PREFIX" help:"Also answer requests whose reply subject is under this inbox prefix, besides _INBOX, _INBOX_CLIENT and _INBOX_WORKER (repeatable; never under the subject prefix or $)."`
	Pprof       string        `help:"Serve Go's pprof profiles on this address, e.g. 127.0.0.1:6061 (off by default)."`
	Metrics     string        `placeholder:"ADDR" help:"Serve Prometheus metrics on http://ADDR/metrics, e.g. 127.0.0.1:9100 (off by default; beyond loopback it needs --metrics-token-file or --metrics-insecure)."`
	MetricsAuthFlags
}

func (c *WorkerCmd) Run(g *globals) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if c.Replicas < 1 || c.Replicas > 10000 {
		return fmt.Errorf("--replicas must be between 1 and 10000")
	}
	if err := c.idsOfCredential(); err != nil {
		return err
	}
	id := c.ID
	if id == "" {
		id = calcworker.NewID()
	}
	ids := []string{id}
	if c.Replicas > 1 {
		ids = make([]string, c.Replicas)
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", id, i)
		}
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
	var wm *calcworker.Metrics // nil: the workers count nothing
	if ms != nil {
		wm = calcworker.NewMetrics()
		ms.Add(wm.Registry())
	}
	ws, err := c.startWorkers(workerPlan{
		ids: ids, prefix: c.Prefix, heartbeat: c.Heartbeat, drainGrace: c.DrainGrace, log: log,
		connect: func() (*nats.Conn, error) { return c.connect("bilancia-worker "+id, log) },
		oneConn: true, metrics: wm, inboxPrefixes: c.ReplyPrefix,
	})
	if err != nil {
		return err
	}
	if c.Replicas == 1 {
		log.Info("worker started", "id", id, "subject", ws.workers[0].Subject(), "concurrency", c.Concurrency)
	} else {
		log.Info("workers started", "ids", fmt.Sprintf("%s-0..%s-%d", id, id, c.Replicas-1), "concurrency", c.Concurrency)
	}
	<-g.ctx.Done()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return ws.stop(ctx, log)
}
