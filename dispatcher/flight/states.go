package flight

import (
	"fmt"
	"time"
)

// ReqState is where a request is in its life.
type ReqState uint8

// A request's states. Every change of a request's state is made by one of
// the functions of this file.
//
//	from     to       by          when
//	new      done     arrive      over MaxInflight or MaxInflightBytes
//	                              (503); a resend of a
//	                              request open here (joined: that one
//	                              answers both); a resend of a request
//	                              whose reply was handed over (relayed);
//	                              its client over MaxClientInflight (503)
//	new      open     arrive      then sendOn
//	open     open     sendOn      a worker picked: one more attempt
//	open     parked   hold        no worker left and no attempt alive,
//	                              during a hold or with attempts still
//	                              open on workers silent on it
//	parked   open     resume      a worker came up, or one in rotation
//	                              is heard again: sendOn, any worker
//	                              again
//	parked   open     revive      its worker names one of its attempts
//	                              again (attempts.go): it waits on it
//	open     done     finish      a reply relayed; a 504 at the deadline;
//	parked   done     finish      a 503 with no worker left and nothing
//	                              open; at the end of a hold; a failed
//	                              publish; the shutdown
const (
	ReqNew    ReqState = iota // made by the shell, not yet arrived
	ReqOpen                   // waiting on attempts, or about to send one
	ReqParked                 // no attempt alive, no worker to send it to: waiting for one
	ReqDone                   // answered exactly once (or joined to the request that answers it)
)

var reqStateNames = [...]string{"new", "open", "parked", "done"}

func (s ReqState) String() string { return reqStateNames[s] }

// arrive takes a new request in.
func (c *Core) arrive(r *Request, now int64) {
	if r.state != ReqNew {
		return
	}
	r.start = now
	if c.cfg.MaxInflight > 0 && len(c.reqs) >= c.cfg.MaxInflight {
		r.state = ReqDone
		c.emit(Action{Kind: ActError, Req: r, Code: CodeUnavailable,
			Msg: fmt.Sprintf("dispatcher %s is at capacity (%d requests in flight)", c.cfg.ID, c.cfg.MaxInflight)})
		return
	}
	if c.cfg.MaxInflightBytes > 0 && c.bytes+r.Cost > c.cfg.MaxInflightBytes {
		r.state = ReqDone
		c.emit(Action{Kind: ActError, Req: r, Code: CodeUnavailable,
			Msg: fmt.Sprintf("dispatcher %s is at capacity (%d bytes of requests in flight)", c.cfg.ID, c.cfg.MaxInflightBytes)})
		return
	}
	r.deadline = now + int64(r.Timeout)
	r.tried, r.open = r.triedBuf[:0], r.openBuf[:0]
	var o *Request
	if r.Keyed {
		o = c.byID[r.ID]
		if o != nil && o.Reply == r.Reply && !c.cfg.Bugs.ResendForwarded {
			// A resend of a request open here: that one answers both.
			r.state = ReqDone
			c.counts.Joined++
			if r.Progress {
				c.emit(Action{Kind: ActProgress, Req: r}) // its client found us silent: say so at once
			}
			return
		}
		// A reply handed over for it: with the id open here for another
		// client, only one that names r's reply subject.
		if o == nil || c.orphans.names(r) {
			if kept := c.orphans.take(r, now, &c.counts); kept != nil {
				r.state = ReqDone
				c.counts.OrphansAnswered++
				c.emit(Action{Kind: ActRelay, Req: r, Payload: kept.payload, Worker: kept.worker, Code: kept.code})
				return
			}
		}
	}
	// One client's share: a resend joined or answered above takes no slot.
	if r.Share != "" && overShare(c.shares[r.Share], c.cfg.MaxClientInflight) {
		r.state = ReqDone
		c.counts.ShareRefused++
		c.emit(Action{Kind: ActError, Req: r, Code: CodeUnavailable,
			Msg: fmt.Sprintf("client %s has %d requests in flight at dispatcher %s, the most one client may", r.Share, c.cfg.MaxClientInflight, c.cfg.ID)})
		return
	}
	if r.Keyed {
		if o != nil {
			r.Keyed = false // another client's id: served on its own
		} else {
			c.byID[r.ID] = r
		}
	}
	if c.counted(r) {
		c.shares[r.Share]++
	}
	r.state = ReqOpen
	r.idx = len(c.reqs)
	c.reqs = append(c.reqs, r)
	c.bytes += r.Cost
	r.dl = timer{at: r.deadline, req: r, idx: -1}
	if r.Progress && c.cfg.ProgressEvery > 0 {
		r.dl.at = min(r.deadline, now+int64(c.cfg.ProgressEvery))
	}
	c.timers.arm(&r.dl)
	c.sendOn(r, now)
}

// sendOn sends r to a worker it has not tried, or when none is left,
// decides whether it waits (hold). It is the one place that opens an
// attempt.
func (c *Core) sendOn(r *Request, now int64) {
	if r.state == ReqDone {
		return
	}
	w := c.pick(r, now)
	if w == nil {
		c.hold(r, now)
		return
	}
	if r.state == ReqParked {
		c.unpark(r)
	}
	c.openAttempt(r, w, now)
}

// hold decides the fate of r, which found no worker to go to: it waits
// on its attempts still alive; it is parked while it has attempts open
// on workers silent on it, or during a hold; otherwise it is answered
// 503. It is the one place that parks a request.
func (c *Core) hold(r *Request, now int64) {
	switch {
	case r.hasAlive():
		// Its open attempts may still answer.
	case r.hasOpenNotGone() || c.holding(now):
		c.park(r)
	default:
		msg := "no worker available"
		if n := len(r.tried); n > 0 {
			msg = fmt.Sprintf("no worker available after %d attempts", n)
		}
		c.finish(r, Action{Kind: ActError, Code: CodeUnavailable, Msg: msg})
	}
}

// counted tells whether r, open, counts in its client's share.
func (c *Core) counted(r *Request) bool { return r.Share != "" && c.cfg.MaxClientInflight > 0 }

func (c *Core) park(r *Request) {
	if r.state != ReqOpen {
		return
	}
	r.state = ReqParked
	r.pidx = len(c.parked)
	c.parked = append(c.parked, r)
}

func (c *Core) unpark(r *Request) {
	if r.state != ReqParked {
		return
	}
	r.state = ReqOpen
	last := c.parked[len(c.parked)-1]
	c.parked[r.pidx], last.pidx = last, r.pidx
	c.parked = c.parked[:len(c.parked)-1]
}

// resume ends the hold, a worker being back, and sends the parked
// requests out again, to any worker, those tried before included: their
// forwards may have been lost in a partition.
func (c *Core) resume(now int64) {
	c.endHold()
	if len(c.parked) == 0 {
		return
	}
	c.emit(Action{Kind: ActResume, Attempts: len(c.parked)})
	reqs := append(c.scratch[:0], c.parked...)
	for _, r := range reqs {
		c.unpark(r)
		r.from = len(r.tried)
		c.sendOn(r, now)
	}
	clear(reqs)
	c.scratch = reqs[:0]
}

// startHold holds requests for d from now, unless a hold runs already.
func (c *Core) startHold(d time.Duration, now int64, why string) {
	if d <= 0 || c.holdEnd.idx >= 0 {
		return
	}
	c.holdLen = d
	c.holdEnd = timer{at: now + int64(d), idx: -1}
	c.timers.arm(&c.holdEnd)
	c.emit(Action{Kind: ActHold, At: int64(d), Msg: why})
}

func (c *Core) holding(now int64) bool { return c.holdEnd.idx >= 0 && now < c.holdEnd.at }

func (c *Core) endHold() { c.timers.disarm(&c.holdEnd) }

// holdOver ends a hold that ran out with no worker back: the parked
// requests with nothing open but on workers gone get their 503.
func (c *Core) holdOver() {
	reqs := append(c.scratch[:0], c.parked...)
	for _, r := range reqs {
		if !r.hasOpenNotGone() {
			c.finish(r, Action{Kind: ActError, Code: CodeUnavailable,
				Msg: fmt.Sprintf("no worker available (held %v for one to come back)", c.holdLen)})
		}
	}
	clear(reqs)
	c.scratch = reqs[:0]
}

// finish answers r with the action a (its Req and Attempts filled in
// here), tells the workers of its other open attempts to stop, and takes
// it out of the table. It is the one place a request is answered.
func (c *Core) finish(r *Request, a Action) {
	if r.state == ReqDone {
		return
	}
	a.Req, a.Attempts = r, len(r.tried)
	c.emit(a)
	for _, at := range r.open {
		if at != c.answering && at.silence > 0 {
			c.emit(Action{Kind: ActCancel, Req: r, W: at.w})
		}
	}
	c.unpark(r)
	r.state = ReqDone
	if r.Keyed && c.byID[r.ID] == r {
		delete(c.byID, r.ID)
	}
	c.timers.disarm(&r.dl)
	for len(r.open) > 0 {
		c.endAttempt(r.open[0])
	}
	if r.retrying {
		r.retrying = false
		c.nRetrying--
	}
	c.bytes -= r.Cost
	if c.counted(r) {
		if c.shares[r.Share]--; c.shares[r.Share] <= 0 {
			delete(c.shares, r.Share)
		}
	}
	last := c.reqs[len(c.reqs)-1]
	c.reqs[r.idx], last.idx = last, r.idx
	c.reqs[len(c.reqs)-1] = nil
	c.reqs = c.reqs[:len(c.reqs)-1]
}

// hasAlive tells whether r waits on an attempt alive.
func (r *Request) hasAlive() bool {
	for _, a := range r.open {
		if a.state.alive() {
			return true
		}
	}
	return false
}

// hasOpenNotGone tells whether r has an attempt open on a worker still in
// rotation (alive, silent or expired).
func (r *Request) hasOpenNotGone() bool {
	for _, a := range r.open {
		if a.state != AttGone {
			return true
		}
	}
	return false
}
