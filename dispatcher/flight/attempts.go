package flight

// AttState is where an attempt is in its life.
type AttState uint8

// An attempt's states. Every change of an attempt's state is made by one
// of the functions of this file. Live and hedged attempts are alive: the
// request waits on them. The others stay open, so that a late reply
// still counts, but the request no longer waits on them.
//
//	from            to       by              when
//	-               live     openAttempt     sendOn picked its worker
//	live            hedged   watch           still making progress past the hedge time: sent on
//	live, hedged,   silent   workerSilent    its worker said nothing on anything past its silence: sent on
//	  expired
//	live, hedged    silent   watch           silent on it past its window, another try allowed: sent on
//	live, hedged    expired  watch           silent on it at the request's last attempt
//	live, hedged,   gone     workerDown      its worker left rotation: sent on (a silent one is not sent on again)
//	  expired
//	silent, expired live     revive          its worker names it again in a progress message
//	  gone
//	any             ended    endAttempt      its reply, a failed publish, or its request done
const (
	AttLive    AttState = iota // sent, watched
	AttHedged                  // alive, and a hedge was sent for it
	AttSilent                  // its worker fell silent: the request went on
	AttExpired                 // silent on it with no attempt left to try
	AttGone                    // its worker left rotation: the request went on
	AttEnded                   // out of the table
)

var attStateNames = [...]string{"live", "hedged", "silent", "expired", "gone", "ended"}

func (s AttState) String() string { return attStateNames[s] }

// revive makes a alive again, its worker having named it in a progress
// message after the request stopped waiting on it (silent, expired or
// gone): it is watched again, and its request, if parked, waits on it
// rather than go out again to a worker, perhaps the same, while this one
// computes it (the simulator's seeds 1 and 8).
func (c *Core) revive(a *Attempt) {
	switch a.state {
	case AttSilent, AttExpired, AttGone:
	default:
		return
	}
	a.state = AttLive
	silence := a.silence
	if silence > 0 {
		silence = silenceOf(silence, a.w.gap)
	}
	c.rewatch(a, watchAt(a.sent, a.heard, silence, c.hedgeOf(a.req), c.cfg.AttemptTimeout, false))
	c.unpark(a.req)
}

// alive tells whether the request still waits on an attempt in s.
func (s AttState) alive() bool { return s == AttLive || s == AttHedged }

// openAttempt sends r to w.
func (c *Core) openAttempt(r *Request, w *Worker, now int64) {
	c.nextTok++
	a := &r.first
	if len(r.tried) > 0 {
		a = new(Attempt)
	}
	*a = Attempt{req: r, w: w, tok: c.nextTok, state: AttLive, sent: now, heard: now, widx: len(w.atts)}
	a.silence = baseSilence(w.progress)
	a.to = timer{req: r, att: a, idx: -1}
	c.pending[a.tok] = a
	key := attemptKey{w.ID, r.ID}
	if _, dup := c.shared[key]; !dup {
		a.shared = true
		c.shared[key] = a
	}
	w.atts = append(w.atts, a)
	w.inflight++
	c.pool.Inflight(w, w.inflight)
	r.open = append(r.open, a)
	r.tried = append(r.tried, w)
	if at := watchAt(a.sent, a.heard, a.silence, c.hedgeOf(r), c.cfg.AttemptTimeout, false); at < r.deadline {
		a.to.at = at
		c.timers.arm(&a.to)
	}
	c.emit(Action{Kind: ActForward, Req: r, W: w, Token: a.tok, Shared: a.shared, LeftMS: leftMS(r.deadline, now)})
}

// endAttempt takes a out of the table: its reply came, its publish
// failed, or its request is done.
func (c *Core) endAttempt(a *Attempt) {
	if a.state == AttEnded {
		return
	}
	a.state = AttEnded
	delete(c.pending, a.tok)
	if a.shared {
		delete(c.shared, attemptKey{a.w.ID, a.req.ID})
	}
	c.timers.disarm(&a.to)
	w := a.w
	last := w.atts[len(w.atts)-1]
	w.atts[a.widx], last.widx = last, a.widx
	w.atts[len(w.atts)-1] = nil
	w.atts = w.atts[:len(w.atts)-1]
	w.inflight--
	c.pool.Inflight(w, w.inflight)
	r := a.req
	for i, o := range r.open {
		if o == a {
			r.open = append(r.open[:i], r.open[i+1:]...)
			break
		}
	}
}

// workerDown marks gone the attempts on w, which left rotation, and
// sends their requests on: each request once per worker lost. An attempt
// silent on it was sent on already.
func (c *Core) workerDown(w *Worker, cause DownCause, noneLive bool, now int64) {
	if noneLive {
		why := "every live worker fell silent at once"
		if cause == DownNoResponders {
			why = "the last live worker answered no responders"
		}
		d := holdLength(cause, c.cfg.HoldFor)
		if c.cfg.Bugs.NoGoneHold && cause == DownNoResponders {
			d = 0
		}
		c.startHold(d, now, why)
	}
	reqs := c.scratch[:0]
	for _, a := range w.atts {
		if cause == DownSilent && a.state.alive() && a.silence > 0 && now-a.heard < int64(silenceOf(a.silence, w.gap)) {
			// Its heartbeats stopped reaching us, but it named this
			// attempt within its silence: it computes it (the simulator's
			// seed 100: a dispatcher back on another broker had missed
			// the heartbeat its worker sent when it moved).
			continue
		}
		if a.state.alive() || a.state == AttExpired {
			a.state = AttGone
			c.timers.disarm(&a.to)
			reqs = append(reqs, a.req)
		}
	}
	c.counts.Redispatched += len(reqs)
	for _, r := range reqs {
		c.sendOn(r, now)
	}
	clear(reqs)
	c.scratch = reqs[:0]
}

// workerSilent marks silent the attempts on w, which said nothing about
// anything past its silence, and sends their requests on.
func (c *Core) workerSilent(w *Worker, now int64) {
	reqs := c.scratch2[:0]
	for _, a := range w.atts {
		if a.state.alive() || a.state == AttExpired {
			a.state = AttSilent
			c.timers.disarm(&a.to)
			reqs = append(reqs, a.req)
		}
	}
	if len(reqs) > 0 {
		c.emit(Action{Kind: ActSilent, W: w, Attempts: len(reqs)})
	}
	c.counts.Silenced += len(reqs)
	c.counts.Retries += len(reqs)
	for _, r := range reqs {
		c.sendOn(r, now)
	}
	clear(reqs)
	c.scratch2 = reqs[:0]
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
		case (v == RetryFirst || v == RetryAgain) && a.silence > 0:
			// Sent on: the request no longer waits on it (a late reply
			// still answers it), so that with no other worker to take it,
			// it is parked rather than left waiting on a silent attempt.
			// A worker that sends no progress may just be slow: its
			// attempt stays alive, and is not sent to it again.
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
