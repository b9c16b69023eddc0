package flight

import (
	"time"
)

// The error codes the core answers with (docs/protocol.md).
const (
	CodeInternal    = 500
	CodeUnavailable = 503
	CodeDeadline    = 504
)

// Counts are the core's counters since New.
type Counts struct {
	Retries, Denied, Redispatched, Silenced, Joined   int
	ShareRefused                                      int // answered 503 past MaxClientInflight
	OrphansKept, OrphansRelayed, OrphansAnswered      int
	OrphansRefused, OrphansExpired, OrphansMismatched int
}

type attemptKey struct{ worker, id string }

// Core is one dispatcher's requests in flight and every decision about
// them. It is not safe for concurrent use: the shell calls Step under a
// lock of its own.
type Core struct {
	cfg     Config
	pool    Pool
	reqs    []*Request // open and parked
	bytes   int64      // their Cost
	parked  []*Request
	pending map[uint64]*Attempt
	shared  map[attemptKey]*Attempt // attempts on their worker's shared reply subject
	byID    map[string]*Request     // open keyed requests, for their resends
	shares  map[string]int          // open requests by Request.Share, with MaxClientInflight
	orphans orphanStore
	timers  schedule
	holdEnd timer // armed while a hold runs
	holdLen time.Duration
	nextTok uint64
	// nRetrying: requests with a timeout retry granted (the budget).
	nRetrying int
	counts    Counts
	wakeAt    int64 // the ActWake last emitted, 0 when none is due

	skip      Skip
	answering *Attempt // the attempt whose reply finishes its request: not cancelled
	out       []Action
	again     []*Request
	silent    []*Worker
	scratch   []*Request
	scratch2  []*Request
}

// New returns a core over pool with cfg.
func New(cfg Config, pool Pool) *Core {
	cfg.MaxAttempts = max(cfg.MaxAttempts, 1)
	if cfg.OrphanKeep <= 0 {
		cfg.OrphanKeep = DefaultOrphanKeep
	}
	if cfg.OrphanBytes <= 0 {
		cfg.OrphanBytes = DefaultOrphanBytes
	}
	if cfg.OrphanMax <= 0 {
		cfg.OrphanMax = DefaultOrphanMax
	}
	c := &Core{cfg: cfg, pool: pool, pending: make(map[uint64]*Attempt),
		shared: make(map[attemptKey]*Attempt), byID: make(map[string]*Request), shares: make(map[string]int)}
	c.holdEnd.idx = -1
	c.orphans.keep, c.orphans.maxBytes, c.orphans.max = int64(cfg.OrphanKeep), cfg.OrphanBytes, cfg.OrphanMax
	c.orphans.due.idx = -1
	return c
}

// Step takes one event and appends to out what the shell must do, in
// order; it returns the extended slice. A Step that leaves a timer due
// sooner than the last ActWake said ends with an ActWake.
func (c *Core) Step(ev Event, out []Action) []Action {
	c.out = out
	now := ev.Now
	switch ev.Kind {
	case EvRequest:
		c.arrive(ev.Req, now)
	case EvReply:
		c.reply(ev, now)
	case EvProgress:
		c.progress(ev, now)
	case EvNoResponders:
		c.noResponders(ev)
	case EvSendFailed:
		if a := c.pending[ev.Token]; a != nil {
			r := a.req
			c.endAttempt(a)
			c.finish(r, Action{Kind: ActError, Code: ev.Code, Msg: ev.Msg})
		}
	case EvWorkerUp:
		ev.W.progress = ev.Every
		c.resume(now)
	case EvProgressEvery:
		ev.W.progress = ev.Every
	case EvWorkerDown:
		c.workerDown(ev.W, ev.Cause, ev.NoneLive, now)
	case EvOrphan:
		c.orphan(ev, now)
	case EvTick:
		c.wakeAt = 0
		c.tick(now, ev.Backlog)
	case EvShutdown:
		for len(c.reqs) > 0 {
			c.finish(c.reqs[len(c.reqs)-1], Action{Kind: ActError, Code: CodeUnavailable, Msg: ev.Msg})
		}
	}
	if at, ok := c.timers.next(); ok && (c.wakeAt == 0 || at < c.wakeAt) {
		c.wakeAt = at
		c.emit(Action{Kind: ActWake, At: at})
	}
	out, c.out = c.out, nil
	return out
}

func (c *Core) emit(a Action) { c.out = append(c.out, a) }

// Inflight is how many requests are open or parked.
func (c *Core) Inflight() int { return len(c.reqs) }

// InflightBytes is what the requests open or parked cost (their Cost).
func (c *Core) InflightBytes() int64 { return c.bytes }

// Parked is how many requests wait for a worker.
func (c *Core) Parked() int { return len(c.parked) }

// Retrying is how many requests have a timeout retry granted.
func (c *Core) Retrying() int { return c.nRetrying }

// Counts are the core's counters.
func (c *Core) Counts() Counts { return c.counts }

// OrphansKept is how many handed-over replies wait for their resend, and
// their bytes.
func (c *Core) OrphansKept() (n, bytes int) { return len(c.orphans.byID), c.orphans.bytes }

// NextTimer is when the earliest timer is due, and whether one is: a
// simulator may call EvTick then rather than follow ActWake.
func (c *Core) NextTimer() (int64, bool) { return c.timers.next() }

// Holding tells whether a hold runs at now.
func (c *Core) Holding(now int64) bool { return c.holding(now) }

// pick picks a worker for r's next attempt: not one it tried since it
// last resumed, and not a mute one while another will do.
func (c *Core) pick(r *Request, now int64) *Worker {
	c.skip = Skip{Mute: true, now: now, tried: r.tried[r.from:]}
	w := c.pool.Pick(&c.skip)
	if w == nil {
		c.skip.Mute = false // every worker left is mute: try one all the same
		w = c.pool.Pick(&c.skip)
	}
	c.skip.tried = nil
	return w
}

// hedgeOf is when r is hedged: its client's, at least MinHedge, or the
// configured; 0 never.
func (c *Core) hedgeOf(r *Request) time.Duration {
	if r.Hedge > 0 {
		return clientHedge(r.Hedge, c.cfg.MinHedge)
	}
	return c.cfg.HedgeAfter
}
