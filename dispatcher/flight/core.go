package flight

import (
	"fmt"
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
	Retries, Denied, Redispatched, Silenced, Joined int
	OrphansKept, OrphansRelayed, OrphansAnswered    int
	OrphansRefused, OrphansExpired                  int
}

type attemptKey struct{ worker, id string }

// Core is one dispatcher's requests in flight and every decision about
// them. It is not safe for concurrent use: the shell calls Step under a
// lock of its own.
type Core struct {
	cfg     Config
	pool    Pool
	reqs    []*Request // open and parked
	parked  []*Request
	pending map[uint64]*Attempt
	shared  map[attemptKey]*Attempt // attempts on their worker's shared reply subject
	byID    map[string]*Request     // open keyed requests, for their resends
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
	c := &Core{cfg: cfg, pool: pool, pending: make(map[uint64]*Attempt),
		shared: make(map[attemptKey]*Attempt), byID: make(map[string]*Request)}
	c.holdEnd.idx = -1
	c.orphans.keep, c.orphans.maxBytes = int64(cfg.OrphanKeep), cfg.OrphanBytes
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

// Parked is how many requests wait for a worker.
func (c *Core) Parked() int { return len(c.parked) }

// Retrying is how many requests have a timeout retry granted.
func (c *Core) Retrying() int { return c.nRetrying }

// Counts are the core's counters.
func (c *Core) Counts() Counts { return c.counts }

// OrphansKept is how many handed-over replies wait for their resend, and
// their bytes.
func (c *Core) OrphansKept() (n, bytes int) { return len(c.orphans.byID), c.orphans.bytes }

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

// hedgeOf is when r is hedged: its client's, or the configured; 0 never.
func (c *Core) hedgeOf(r *Request) time.Duration {
	if r.Hedge > 0 {
		return r.Hedge
	}
	return c.cfg.HedgeAfter
}

// attempt finds the attempt a message names: its token or, with none, its
// worker's shared subject and request id.
func (c *Core) attempt(tok uint64, worker, id string) *Attempt {
	if tok != 0 {
		return c.pending[tok]
	}
	return c.shared[attemptKey{worker, id}]
}

// reply takes a worker's reply. A fault (500, 503) ends only its attempt
// while the request has tried fewer than MaxAttempts workers; any other
// reply answers the request.
func (c *Core) reply(ev Event, now int64) {
	a := c.attempt(ev.Token, ev.Worker, ev.ID)
	if a == nil {
		c.ackReply(ev.AckTo) // late: its request was answered by another attempt
		return
	}
	r, w := a.req, a.w
	w.hear(now)
	fault := ev.Code == CodeInternal || ev.Code == CodeUnavailable
	if fault {
		c.emit(Action{Kind: ActFailure, W: w, Msg: fmt.Sprintf("repeated %d replies", ev.Code)})
	} else {
		c.emit(Action{Kind: ActSuccess, W: w})
	}
	if fault && len(r.tried) < c.cfg.MaxAttempts {
		c.endAttempt(a)
		c.sendOn(r, now) // a worker failing or leaving: another may do better
		c.ackReply(ev.AckTo)
		return
	}
	c.answering = a
	c.finish(r, Action{Kind: ActRelay, Payload: ev.Payload, Worker: w.ID, Code: ev.Code})
	c.answering = nil
	c.ackReply(ev.AckTo)
}

func (c *Core) ackReply(to string) {
	if to != "" {
		c.emit(Action{Kind: ActAck, Subject: to})
	}
}

// progress records a sign of life for the attempts a progress message
// names. Nothing is re-armed: an attempt's watch looks at heard when it
// fires.
func (c *Core) progress(ev Event, now int64) {
	if ev.Token != 0 {
		if a := c.pending[ev.Token]; a != nil {
			a.heard = now
			a.w.hear(now)
			a.w.tick(now)
			c.revive(a)
		}
		return
	}
	var w *Worker
	for _, id := range ev.IDs {
		if a := c.shared[attemptKey{ev.Worker, id}]; a != nil {
			a.heard = now
			w = a.w
			c.revive(a)
		}
	}
	if w != nil {
		w.hear(now)
		w.tick(now)
	}
}

// noResponders: the attempt's worker has no subscriber. On a worker's
// shared subject the broker's status carries no request id: the worker
// alone is known.
func (c *Core) noResponders(ev Event) {
	if ev.Token == 0 {
		c.emit(Action{Kind: ActWorkerGone, Worker: ev.Worker})
		return
	}
	if a := c.pending[ev.Token]; a != nil {
		c.emit(Action{Kind: ActWorkerGone, W: a.w, Worker: a.w.ID})
	}
}

// tick fires the timers due at now. Requests to send on are sent once
// every due timer is seen, so that workers found silent in this round are
// skipped by its retries; then the requests on workers found silent go
// on; then, with requests parked and a worker in rotation not mute, they
// resume.
func (c *Core) tick(now int64, backlog bool) {
	for tm := c.timers.pop(now); tm != nil; tm = c.timers.pop(now) {
		switch {
		case tm == &c.holdEnd:
			c.holdOver()
		case tm.att == nil:
			c.deadline(tm.req, now)
		default:
			late := now-tm.at > int64(c.cfg.ProgressEvery)
			c.watch(tm.att, now, !backlog && !late)
		}
	}
	for _, r := range c.again {
		c.sendOn(r, now)
	}
	for _, w := range c.silent {
		c.workerSilent(w, now)
	}
	clear(c.again)
	clear(c.silent)
	c.again, c.silent = c.again[:0], c.silent[:0]
	if len(c.parked) > 0 {
		c.skip = Skip{Mute: true, now: now}
		if c.pool.AnyLive(&c.skip) {
			c.resume(now)
		}
	}
}

// deadline fires r's timer: before its deadline a progress message to
// its client, at it a 504.
func (c *Core) deadline(r *Request, now int64) {
	if r.dl.at < r.deadline {
		r.dl.at = min(r.deadline, now+int64(c.cfg.ProgressEvery))
		c.timers.arm(&r.dl)
		c.emit(Action{Kind: ActProgress, Req: r})
		return
	}
	c.finish(r, Action{Kind: ActError, Code: CodeDeadline,
		Msg: fmt.Sprintf("deadline passed after %v and %d attempt(s)",
			time.Duration(now-r.start).Round(time.Millisecond), len(r.tried))})
}

// watch fires attempt a's watch. It looks again while its worker shows
// signs of life, and may hedge; otherwise the attempt has failed, and
// within MaxAttempts and the budget its request goes to another worker
// too. heardAll says the shell has read what reached it: otherwise
// silence says nothing, and the watch looks again a quarter of the
// silence later.
func (c *Core) watch(a *Attempt, now int64, heardAll bool) {
	r, w := a.req, a.w
	if !a.state.alive() {
		return
	}
	silence := a.silence
	if silence > 0 {
		silence = silenceOf(silence, w.gap)
	}
	hedge := false
	switch {
	case silence > 0 && now < a.heard+int64(silence):
		// Alive: watch on, and hedge if it is time.
		h := c.hedgeOf(r)
		hedge = hedgeDue(now, a.sent, h, a.state == AttHedged)
		if hedge {
			a.state = AttHedged
		}
		c.rewatch(a, watchAt(a.sent, a.heard, silence, h, c.cfg.AttemptTimeout, a.state == AttHedged))
		if !hedge {
			return
		}
	case silence > 0 && !heardAll:
		c.rewatch(a, now+int64(silence/4))
		return
	case silence > 0 && now-w.heard >= int64(silence):
		// Not a word from the worker about anything: hung or gone.
		w.muteUntil = now + int64(c.cfg.MuteFor)
		c.emit(Action{Kind: ActFailure, W: w, Msg: "repeated timeouts"})
		c.silent = append(c.silent, w)
		return
	}
	r.timeouts++
	v := retryAfterTimeout(r.timeouts, c.cfg.MaxAttempts, r.retrying, c.cfg.Budget, len(c.reqs), c.nRetrying)
	switch v {
	case RetryFirst:
		r.retrying = true
		c.nRetrying++
	case RetryDenied:
		c.counts.Denied++
	}
	if !hedge {
		switch {
		case v == RetryDenied:
			// Another worker could be tried once the budget allows: look
			// again then; this timeout is not counted yet.
			r.timeouts--
			c.rewatch(a, now+int64(max(silence, c.cfg.AttemptTimeout)/4))
			return
		case v == NoRetry && a.silence > 0 && !c.cfg.Bugs.ParkForever:
			// Silent on it with no worker left to try: parked, it goes
			// out again when a worker comes up or one is heard again.
			a.state = AttExpired
			if !r.hasAlive() {
				c.park(r)
			}
		case v == RetryFirst || v == RetryAgain:
			// Sent on: the request no longer waits on it (a late reply
			// still answers it), so that with no other worker to take it,
			// it is parked rather than left waiting on a silent attempt.
			a.state = AttSilent
		}
		c.emit(Action{Kind: ActFailure, W: w, Msg: "repeated timeouts"})
	}
	if v == RetryFirst || v == RetryAgain {
		c.counts.Retries++
		c.again = append(c.again, r)
	}
}

// rewatch arms a's watch at at, unless r's deadline comes first.
func (c *Core) rewatch(a *Attempt, at int64) {
	if at < a.req.deadline {
		a.to.at = at
		c.timers.arm(&a.to)
	}
}

// orphan takes a reply handed over by worker ev.Worker. The request open
// here under its id, if that worker was tried for it, is answered with it;
// otherwise it is kept for the request's resend. A 500 or 503 is refused:
// another worker may do better, and the resend finds one.
func (c *Core) orphan(ev Event, now int64) {
	if ev.ID == "" || ev.Size == 0 || ev.Code == CodeInternal || ev.Code == CodeUnavailable {
		c.counts.OrphansRefused++
		return
	}
	if r := c.byID[ev.ID]; r != nil && r.state != ReqDone {
		c.counts.OrphansRelayed++
		c.finish(r, Action{Kind: ActRelay, Payload: ev.Payload, Worker: ev.Worker, Code: ev.Code})
		return
	}
	c.orphans.put(&kept{id: ev.ID, payload: ev.Payload, worker: ev.Worker, code: ev.Code, size: ev.Size, at: now}, now, &c.counts)
	c.counts.OrphansKept++
}
