// Package dispatcher is Bilancia's load balancer: it tracks calc workers
// from their heartbeats and forwards each request to the next live one,
// relaying the reply to the client.
//
// The forwarding path spends no goroutine and no blocking request per
// forward: each forward is published with a reply subject under the
// dispatcher's own wildcard inbox, one subscription receives every worker
// reply, a map finds the pending attempt, and one sweep loop handles
// attempts' watches and deadlines.
//
// The reply subject is the same for every forward to a worker,
// "<inbox><worker id>", and the request id the worker echoes tells the
// attempts apart: a subject never seen again costs the broker a miss in
// its subject cache for every message. A request whose id is already
// pending on that worker (a client's resend) gets a subject of its own,
// "<inbox>t.<token>", as does nothing else. All attempts of a
// request stay open until it is answered, so the first reply wins and a
// slow attempt is never wasted; exactly one reply goes to the client.
//
// Every decision about a request, from its arrival to its one answer, is
// made by the pure core in package flight, whose request and attempt
// states and transitions are in flight/states.go. This package is its
// shell: it turns messages into the core's events, carries out the
// actions the core returns, and keeps membership, metrics, micro, ctl,
// status and the request log.
//
// The files: config.go the settings and their defaults; dispatcher.go
// starting and stopping; forward.go the hot path's messages made events;
// inflight.go the core under its lock, and its view of the workers;
// actions.go the actions carried out, the one place on the request path
// that publishes; sweep.go the core's clock and the expiry of silent
// workers, timers.go its maths; orphan.go replies handed over; events.go
// what membership changes tell the core; headers.go the pooled forward
// headers; membership.go the table of workers; balance.go the strategies;
// reqlog.go the request log; paced.go the heartbeat connection's dialer.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/internal/microsvc"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Stats are the dispatcher's counters.
type Stats struct {
	Served, Failed, Retries, RetriesDenied, Redispatched, LogDropped uint64
	Inflight                                                         int64
}

// Dispatcher forwards requests to workers. Create it with New.
type Dispatcher struct {
	cfg     Config // with its defaults filled in
	nc      *nats.Conn
	subj    wire.Subjects
	inboxes wire.Inboxes // where replies may go (replies.go)
	log     *slog.Logger
	mem     *membership
	pick    picker
	idValue []string // Calc-Dispatcher's value
	start   time.Time

	inflight inflight
	stats    struct {
		served, failed atomic.Uint64
	}
	reqlog *requestLog
	events eventQueue        // publish.go
	micro  *microsvc.Service // discovery (micro.go)
	served served            // status and control requests, for micro
	guard  guard             // rate-limited warnings, the status reply's cache
	subs   subscriptions
	quit   chan struct{}
	// stopRediscover ends the asking for heartbeats again when the
	// connection comes back (rediscover).
	stopRediscover func()
	wg             sync.WaitGroup

	metrics metrics // metrics.go

	stopOnce sync.Once
}

// subscription is one of the dispatcher's subscriptions and the connection
// it is on.
type subscription struct {
	*nats.Subscription
	nc *nats.Conn
}

// subscriptions are the dispatcher's, in the order Start makes them.
type subscriptions struct {
	heartbeats subscription // on Config.HeartbeatConn; the sweep reads its backlog
	replies    subscription // "<inbox>>": every worker reply
	status     subscription
	connect    subscription // clients' hellos
	disconnect subscription // clients' goodbyes
	ctl        subscription // operators' drains (ctl.go)
	orphans    subscription // replies handed over (orphan.go)
	requests   subscription // in the dispatchers' queue group, last
}

// all returns the subscriptions made so far, in the order Start makes them.
func (s *subscriptions) all() []subscription {
	var out []subscription
	for _, sub := range []subscription{s.heartbeats, s.replies, s.orphans, s.status, s.connect, s.disconnect, s.ctl, s.requests} {
		if sub.Subscription != nil {
			out = append(out, sub)
		}
	}
	return out
}

// New validates cfg and returns a dispatcher ready to Start.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Conn == nil {
		return nil, errors.New("dispatcher: Config.Conn is required")
	}
	cfg = cfg.withDefaults()
	if !wire.ValidSubject(cfg.Subject) {
		return nil, fmt.Errorf("dispatcher: subject %q must be a literal subject (dot-separated tokens, no wildcards)", cfg.Subject)
	}
	inboxes, err := newInboxes(cfg)
	if err != nil {
		return nil, fmt.Errorf("dispatcher: %w", err)
	}
	d := &Dispatcher{
		cfg: cfg, nc: cfg.Conn, subj: wire.Subjects{Prefix: cfg.Prefix}, log: boundLogger(cfg.Logger),
		idValue: []string{cfg.ID},
		mem:     newMembership(cfg.DeadAfter, cfg.Outlier),
		inboxes: inboxes,
		quit:    make(chan struct{}),
	}
	if d.pick, err = newPicker(cfg.Strategy, d.verdict); err != nil {
		return nil, err
	}
	d.mem.maxWorkers = cfg.MaxWorkers
	d.events.init(cfg.Conn)
	d.metrics.init(d)
	d.inflight.core = flight.New(flight.Config{
		ID: cfg.ID, MaxInflight: cfg.MaxInflight, MaxInflightBytes: cfg.MaxInflightBytes, MaxAttempts: cfg.MaxAttempts,
		MaxClientInflight: cfg.MaxClientInflight, MinHedge: cfg.MinHedge,
		AttemptTimeout: cfg.AttemptTimeout, HedgeAfter: cfg.HedgeAfter, ProgressEvery: cfg.ProgressInterval,
		MuteFor: cfg.DeadAfter, HoldFor: cfg.HoldFor,
		Budget: flight.Budget(cfg.retryBudget()),
	}, newPool(d))
	d.inflight.wake = make(chan struct{}, 1)
	d.inflight.next, d.inflight.planned = math.MaxInt64, math.MaxInt64
	if cfg.LogRequests {
		d.reqlog = newRequestLog(cfg.RequestLogger, cfg.RequestLog, cfg.LogQueue)
	}
	return d, nil
}

// ID is the dispatcher's id.
func (d *Dispatcher) ID() string { return d.cfg.ID }

// LiveWorkers is the number of workers currently up, in rotation.
func (d *Dispatcher) LiveWorkers() int { return len(d.mem.Live()) }

// Start subscribes and asks the workers to introduce themselves, so that a
// restarted dispatcher knows them at once.
func (d *Dispatcher) Start() error {
	d.start = time.Now()
	// A private inbox prefix per dispatcher: "_INBOX.<nuid>.".
	d.inflight.inbox = nats.InboxPrefix + nuid.Next() + "."
	subscribe := func(to *subscription, nc *nats.Conn, subj, queue string, cb nats.MsgHandler) error {
		var s *nats.Subscription
		var err error
		if queue != "" {
			s, err = nc.QueueSubscribe(subj, queue, cb)
		} else {
			s, err = nc.Subscribe(subj, cb)
		}
		if err != nil {
			return fmt.Errorf("dispatcher: subscribe %s: %w", subj, err)
		}
		// MaxInflight bounds the work; the buffers only absorb bursts.
		_ = s.SetPendingLimits(-1, 256<<20)
		*to = subscription{s, nc}
		return nil
	}
	// Worker replies and heartbeats before requests: nothing is forwarded
	// before its answer can be heard.
	if err := subscribe(&d.subs.heartbeats, d.cfg.HeartbeatConn, d.subj.Heartbeats(), "", d.onHeartbeat); err != nil {
		return err
	}
	side := d.cfg.SideConn
	for _, s := range []struct {
		to   *subscription
		nc   *nats.Conn
		subj string
		cb   nats.MsgHandler
	}{
		{&d.subs.replies, d.nc, d.inflight.inbox + ">", d.onReply}, // "<worker id>" and "t.<token>"
		{&d.subs.orphans, side, d.subj.HandOvers(), d.onOrphan},
		{&d.subs.status, side, d.subj.Status(), d.onStatus},
		{&d.subs.connect, side, d.subj.ClientConnect(), d.onClient},
		{&d.subs.disconnect, side, d.subj.ClientDisconnect(), d.onClient},
	} {
		if err := subscribe(s.to, s.nc, s.subj, "", s.cb); err != nil {
			d.unsubscribe()
			return err
		}
	}
	d.limitSideBacklogs()
	conns := []*nats.Conn{d.nc}
	for _, nc := range []*nats.Conn{d.cfg.HeartbeatConn, side} {
		if !slices.Contains(conns, nc) {
			conns = append(conns, nc)
		}
	}
	for _, nc := range conns {
		if err := nc.Flush(); err != nil {
			d.unsubscribe()
			return fmt.Errorf("dispatcher: flush: %w", err)
		}
	}
	// The drains the other dispatchers hold, before any worker is heard.
	if err := d.syncDrains(); err != nil {
		d.unsubscribe()
		return fmt.Errorf("dispatcher: drains: %w", err)
	}
	if err := subscribe(&d.subs.ctl, d.nc, d.subj.CtlAll(), "", d.onCtl); err != nil {
		d.unsubscribe()
		return err
	}
	if err := d.nc.Publish(d.subj.Discover(), nil); err != nil {
		d.unsubscribe()
		return fmt.Errorf("dispatcher: discover: %w", err)
	}
	d.stopRediscover = natsutil.OnReconnect(d.nc, d.rediscover)
	if err := subscribe(&d.subs.requests, d.nc, d.cfg.Subject, wire.DispatcherQueue, d.onRequest); err != nil {
		d.unsubscribe()
		return err
	}
	if err := d.nc.Flush(); err != nil {
		d.unsubscribe()
		return fmt.Errorf("dispatcher: flush: %w", err)
	}
	if err := d.startMicro(); err != nil {
		d.unsubscribe()
		return fmt.Errorf("dispatcher: micro: %w", err)
	}
	if d.reqlog != nil {
		d.reqlog.start()
	}
	d.events.start()
	d.dispatcherEvent(wire.EventStart)
	d.wg.Add(1)
	go d.sweep()
	d.log.Info("dispatcher started", "dispatcher", d.cfg.ID, "subject", d.cfg.Subject,
		"queue", wire.DispatcherQueue, "strategy", d.cfg.Strategy, "max_inflight", d.cfg.MaxInflight,
		"request_timeout", d.cfg.RequestTimeout.String(), "dead_after", d.cfg.DeadAfter.String())
	return nil
}

// rediscover asks every worker to heartbeat at once, when the connection
// came back after it was lost (perhaps to another broker of the cluster):
// heartbeats missed meanwhile would otherwise leave workers taken for down
// or silent until their next one.
func (d *Dispatcher) rediscover() {
	if err := d.nc.Publish(d.subj.Discover(), nil); err != nil {
		d.log.Warn("discover after reconnect", "error", err)
	}
}

func (d *Dispatcher) unsubscribe() {
	for _, s := range d.subs.all() {
		_ = s.Unsubscribe()
	}
}

// Shutdown stops taking requests, lets those in flight finish until ctx
// ends (then answers them 503), and stops. Safe to call more than once and
// concurrently.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	var err error
	d.stopOnce.Do(func() { err = d.shutdown(ctx) })
	return err
}

func (d *Dispatcher) shutdown(ctx context.Context) error {
	// Stop taking requests first; replies and heartbeats keep flowing so
	// that requests in flight can finish.
	d.stopMicro()
	if req := d.subs.requests; req.Subscription != nil {
		natsutil.Drain(ctx, req.Subscription, req.nc)
	}
	var err error
	tick := time.NewTicker(d.cfg.Tick)
	defer tick.Stop()
wait:
	for d.inflight.count.Load() > 0 {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("dispatcher: shutdown: %w", ctx.Err())
			break wait
		case <-tick.C:
		}
	}
	close(d.quit)
	d.wg.Wait()
	if d.stopRediscover != nil {
		d.stopRediscover()
	}
	// Drain the rest, so that what already reached the broker for us (a
	// worker's last "draining" heartbeat, a late reply) is still heard.
	for _, sub := range d.subs.all() {
		natsutil.Drain(ctx, sub.Subscription, sub.nc)
	}
	// Whatever is still open gets its one reply.
	d.run(flight.Event{Kind: flight.EvShutdown, Now: time.Now().UnixNano(), Msg: "dispatcher " + d.cfg.ID + " shut down"})
	d.dispatcherEvent(wire.EventStop)
	d.events.stop()
	_ = d.nc.FlushTimeout(time.Second)
	st := d.Stats()
	d.log.Info("dispatcher stopped", "dispatcher", d.cfg.ID, "served", st.Served, "failed", st.Failed,
		"retries", st.Retries, "log_dropped", st.LogDropped)
	if d.reqlog != nil {
		d.reqlog.stop()
	}
	return err
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	c, _ := d.coreStats()
	s := Stats{
		Served: d.stats.served.Load(), Failed: d.stats.failed.Load(),
		Retries: uint64(c.Retries), RetriesDenied: uint64(c.Denied),
		Redispatched: uint64(c.Redispatched), Inflight: d.inflight.count.Load(),
	}
	if d.reqlog != nil {
		s.LogDropped = d.reqlog.dropped.Load()
	}
	return s
}
