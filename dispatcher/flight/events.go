package flight

import (
	"fmt"
	"time"
)

// The events' handlers: what each message or timer does, through the
// transitions of states.go.

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
		c.emit(Action{Kind: ActFailure, W: w, Msg: fmt.Sprintf("repeated %d replies", ev.Code), At: a.sent, Code: ev.Code})
	} else {
		c.emit(Action{Kind: ActSuccess, W: w, At: a.sent, Code: ev.Code})
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
		case tm == &c.orphans.due:
			c.orphans.expire(now, &c.counts)
			c.orphans.rearm(&c.timers)
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

// orphan takes a reply handed over by worker ev.Worker. The request open
// here under its id, if it is for the client the hand-over names
// (ev.Client, its reply subject; "" names none), is answered with it;
// otherwise it is kept for the resend of that client's request. A 500 or 503 is refused:
// another worker may do better, and the resend finds one.
func (c *Core) orphan(ev Event, now int64) {
	if ev.ID == "" || ev.Size == 0 || ev.Code == CodeInternal || ev.Code == CodeUnavailable {
		c.counts.OrphansRefused++
		return
	}
	if r := c.byID[ev.ID]; r != nil && r.state != ReqDone && (ev.Client == "" || ev.Client == r.Reply) {
		c.counts.OrphansRelayed++
		c.finish(r, Action{Kind: ActRelay, Payload: ev.Payload, Worker: ev.Worker, Code: ev.Code})
		return
	}
	c.orphans.put(&kept{id: ev.ID, client: ev.Client, payload: ev.Payload, worker: ev.Worker, code: ev.Code, size: ev.Size, at: now}, now, &c.counts)
	c.orphans.rearm(&c.timers)
	c.counts.OrphansKept++
}
