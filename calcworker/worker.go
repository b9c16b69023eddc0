// Package calcworker is Bilancia's calc worker: it serves its own subject,
// computes with package calc, replies, and heartbeats so that dispatchers
// know it is alive.
package calcworker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/internal/loglimit"
	"github.com/bilancia/bilancia/internal/microsvc"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Config configures a Worker. Zero values mean the documented defaults.
type Config struct {
	Conn   *nats.Conn // required: the worker does not own it and never closes it
	ID     string     // "" = NewID()
	Prefix string     // "" = "calc"
	// Heartbeat is the interval between heartbeats; each is jittered by
	// ±10% so workers do not heartbeat in lockstep. 0 = 1s.
	Heartbeat time.Duration
	// Concurrency bounds requests computed at once. 0 = 16, enough that
	// sleep jobs do not hold up fast ones.
	Concurrency int
	// Queue bounds the requests received and waiting for a compute
	// goroutine; beyond it the subscription waits, and what the broker
	// sends meanwhile waits in the connection's buffer, unseen (no
	// progress messages for it). 0 = 1024. Not used with Shared.
	Queue int
	// Progress is the interval of progress messages for requests that ask
	// for them (a dispatcher's forwards, Calc-Progress: 1), announced in
	// heartbeats as progress_ms. 0 = 100ms; <0 = none, and cancel
	// messages are ignored: dispatchers then fall back on their attempt
	// timeout.
	Progress time.Duration
	// ServeDirect also serves <prefix>.direct in queue group "workers", so
	// that a load can reach the workers without a dispatcher (bench).
	ServeDirect bool
	// Env bounds and slows computations (see calc.Env).
	Env calc.Env
	// DrainGrace is how long a shutting-down worker keeps serving after
	// it announced draining, before it stops listening. With 0 it relies
	// on its draining heartbeat reaching each dispatcher before any
	// request it would refuse, which holds when the dispatcher hears
	// heartbeats and replies on one connection; bilancia dispatcher reads
	// heartbeats on a connection of its own, in 10ms batches, so the
	// worker command sets 200ms.
	DrainGrace time.Duration
	// OnError, if set, hears about asynchronous failures (a reply that
	// could not be sent). Library code does not log.
	OnError func(error)
	// ClaimWait bounds Start's check that no live worker has the id
	// (CheckIDs). 0 = DefaultClaimWait; <0 = no check: the caller checked
	// already, or a test wants an impostor.
	ClaimWait time.Duration
	// Shared, if set, delivers this worker's messages through a channel
	// and compute goroutines shared with other workers of the process,
	// instead of goroutines of its own; Concurrency is then the Shared's.
	Shared *Shared
	// InboxPrefixes are the reply subjects' prefixes accepted beyond
	// wire.DefaultInboxPrefixes: a message whose reply subject is under
	// none of them gets no reply and no work (replies.go). Each must be a
	// literal subject outside Prefix and the "$" subjects. nil = none.
	InboxPrefixes []string
	// Metrics, if set, counts the worker's requests and heartbeats; give
	// the same to every worker of a process. nil = none.
	Metrics *Metrics
}

// Worker is a running calc worker.
type Worker struct {
	cfg   Config
	nc    *nats.Conn
	subj  wire.Subjects
	start time.Time
	// idValue is Calc-Worker's value, shared by every reply.
	idValue []string
	jobs    chan *job

	subs     []*nats.Subscription
	hbMu     sync.Mutex     // serialises heartbeats from the timer with hbTimer's end
	hbTimer  *time.Timer    // the next heartbeat; nil once stopped
	pool     sync.WaitGroup // compute goroutines
	work     sync.WaitGroup // requests accepted and not yet answered
	mu       sync.RWMutex   // guards stopped against enqueue
	stopped  bool           // no more sends on jobs
	ctx      context.Context
	cancel   context.CancelFunc
	seq      atomic.Uint64
	state    atomic.Value // string
	inflight atomic.Int64
	served   atomic.Uint64
	errs     atomic.Uint64
	busy     atomic.Int64      // nanoseconds from arrival to reply, for micro
	micro    *microsvc.Service // discovery (micro.go)

	jobMu     sync.Mutex // guards held, the jobs' cancel fields and the progress timer
	held      map[*job]struct{}
	pgTimer   *time.Timer // the next progress tick, armed while jobs are held
	pgArmed   bool
	pgStopped bool

	// bounces: long jobs' replies, handed over if their dispatcher is
	// gone (orphan.go); nil when the worker sends no progress.
	bounces    *bounces
	bounceSub  *nats.Subscription
	handedOver atomic.Uint64

	// Where replies may go, and the messages refused for their reply
	// subject (replies.go).
	inboxes    wire.Inboxes
	refused    atomic.Uint64
	refusedLog loglimit.Limit

	stopWatch func() // ends watchReconnects

	stopOnce sync.Once
	stopErr  error
}

// New validates cfg and returns a worker ready to Start.
func New(cfg Config) (*Worker, error) {
	if cfg.Conn == nil {
		return nil, errors.New("calcworker: Config.Conn is required")
	}
	if cfg.ID == "" {
		cfg.ID = NewID()
	}
	if !wire.ValidID(cfg.ID) {
		return nil, fmt.Errorf("calcworker: id %q must be a single subject token", cfg.ID)
	}
	inboxes, err := wire.NewInboxes(cfg.Prefix, cfg.InboxPrefixes...)
	if err != nil {
		return nil, fmt.Errorf("calcworker: %w", err)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1024
	}
	if cfg.Progress == 0 {
		cfg.Progress = 100 * time.Millisecond
	}
	if cfg.ClaimWait == 0 {
		cfg.ClaimWait = DefaultClaimWait
	}
	cfg.Env.WorkerID = cfg.ID
	if cfg.Shared != nil {
		cfg.Concurrency = cfg.Shared.concurrency
	}
	w := &Worker{cfg: cfg, nc: cfg.Conn, subj: wire.Subjects{Prefix: cfg.Prefix}, idValue: []string{cfg.ID}, inboxes: inboxes}
	w.jobs = make(chan *job, cfg.Queue)
	w.held = make(map[*job]struct{})
	w.state.Store(wire.StateUp)
	// Computations get a context that ends only at the very end of a
	// shutdown: draining lets in-flight work finish.
	w.ctx, w.cancel = context.WithCancel(context.Background())
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Subject is the worker's own subject.
func (w *Worker) Subject() string { return w.subj.Worker(w.cfg.ID) }

// Start checks that no live worker has the id (an error wrapping
// ErrIDTaken if one has), subscribes, starts the compute pool and the
// heartbeat loop, and sends the first heartbeat at once.
func (w *Worker) Start() error {
	w.start = time.Now()
	if err := w.claim(); err != nil {
		w.abort() // and a later Shutdown announces nothing for the id
		return err
	}
	if w.cfg.Shared == nil {
		for range w.cfg.Concurrency {
			w.pool.Add(1)
			go w.compute()
		}
	}
	subscribe := func(subj, queue string, cb nats.MsgHandler) error {
		var s *nats.Subscription
		var err error
		switch {
		case w.cfg.Shared != nil:
			s, err = w.cfg.Shared.subscribe(w, subj, queue)
		case queue != "":
			s, err = w.nc.QueueSubscribe(subj, queue, cb)
		default:
			s, err = w.nc.Subscribe(subj, cb)
		}
		if err != nil {
			w.abort()
			return fmt.Errorf("calcworker: subscribe: %w", err)
		}
		if w.cfg.Shared == nil {
			// The compute pool is the bound; the subscription buffer
			// only absorbs bursts, and dispatchers cap what they send.
			_ = s.SetPendingLimits(-1, 256<<20)
		}
		w.subs = append(w.subs, s)
		return nil
	}
	if w.cfg.Progress > 0 {
		// Before the worker's subject: every long reply can bounce.
		var subj string
		w.bounces, subj = newBounces(w.nc.NewInbox(), w.handOver)
		var err error
		if w.cfg.Shared != nil {
			w.bounceSub, err = w.cfg.Shared.subscribeFunc(w, subj, w.bounced)
		} else {
			w.bounceSub, err = w.nc.Subscribe(subj, w.bounced)
		}
		if err != nil {
			w.abort()
			return fmt.Errorf("calcworker: subscribe: %w", err)
		}
	}
	if err := subscribe(w.Subject(), "", w.enqueue); err != nil {
		return err
	}
	if w.cfg.ServeDirect {
		if err := subscribe(w.subj.Direct(), wire.WorkerQueue, w.enqueue); err != nil {
			return err
		}
	}
	if err := subscribe(w.subj.Discover(), "", func(*nats.Msg) { w.heartbeat() }); err != nil {
		return err
	}
	if err := w.startMicro(); err != nil {
		w.abort()
		return fmt.Errorf("calcworker: micro: %w", err)
	}
	if err := w.nc.Flush(); err != nil {
		w.abort()
		return fmt.Errorf("calcworker: flush: %w", err)
	}
	w.heartbeat()
	w.hbMu.Lock()
	w.hbTimer = time.AfterFunc(jittered(w.cfg.Heartbeat), w.heartbeatTick)
	w.hbMu.Unlock()
	w.watchReconnects()
	w.cfg.Metrics.add(w)
	return nil
}

// abort undoes a failed Start; a later Shutdown has nothing left to do.
func (w *Worker) abort() {
	w.stopOnce.Do(func() { w.stopErr = errors.New("calcworker: not started") })
	for _, s := range w.subs {
		_ = s.Unsubscribe()
	}
	w.settleBounces(0) // no reply was sent
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.work.Wait()
	close(w.jobs)
	w.pool.Wait()
	w.cancel()
}

// Shutdown drains the worker: it announces draining, stops taking new
// requests, finishes the ones in flight (until ctx ends, when they are
// cancelled), and stops heartbeating. Safe to call more than once and
// concurrently; every call returns the first call's result.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.stopOnce.Do(func() { w.stopErr = w.shutdown(ctx) })
	return w.stopErr
}

func (w *Worker) shutdown(ctx context.Context) error {
	w.state.Store(wire.StateDraining)
	w.stopWatching()
	w.stopMicro()
	w.stopHeartbeats()
	w.heartbeat()
	// Flush so the draining heartbeat leaves before the subscription goes:
	// a dispatcher then takes us out of rotation without one "no
	// responders" on the way.
	_ = w.nc.FlushTimeout(time.Second)
	if w.cfg.DrainGrace > 0 {
		t := time.NewTimer(w.cfg.DrainGrace)
		select { // requests that arrive meanwhile are still served
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	// Drain delivers what the server already sent us, then closes.
	for _, s := range w.subs {
		natsutil.Drain(ctx, s, w.nc)
	}
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	done := make(chan struct{})
	go func() { w.work.Wait(); close(w.jobs); w.pool.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		w.cancel() // in-flight computations end early with an error reply
		<-done
		err = fmt.Errorf("calcworker: drain: %w", ctx.Err())
	}
	w.cancel()
	w.stopProgress()
	w.cfg.Metrics.remove(w)
	_ = w.nc.FlushTimeout(time.Second)
	w.settleBounces(2 * ackWait)
	_ = w.nc.FlushTimeout(time.Second) // the replies handed over
	return err
}

func parseMillis(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// Stats are the worker's counters.
type Stats struct {
	Served, Errors uint64
	Inflight       int64
	// HandedOver counts the replies handed over because the dispatcher
	// that forwarded their job was gone.
	HandedOver uint64
	// RefusedReplies counts the messages dropped unanswered because
	// their reply subject is not an inbox.
	RefusedReplies uint64
}

// Stats returns the worker's counters.
func (w *Worker) Stats() Stats {
	return Stats{Served: w.served.Load(), Errors: w.errs.Load(), Inflight: w.inflight.Load(), HandedOver: w.handedOver.Load(), RefusedReplies: w.refused.Load()}
}
