package flight

import "time"

// Policy: the small pure decisions, each with the time passed in.

// SilentAfterBeats is how many of its progress intervals a worker may
// stay silent on an attempt before the attempt has failed.
const SilentAfterBeats = 4

// GoneGrace is the hold when the last live workers went down on "no
// responders": a worker whose broker died answers so while it reconnects
// to another, and heartbeats as soon as it is back; one that died does
// not come back, and the requests held get their 503 this much later.
const GoneGrace = 250 * time.Millisecond

// baseSilence is how long an attempt on a worker with progress interval
// every may go without a sign of life; 0 when it sends none.
func baseSilence(every time.Duration) time.Duration {
	return SilentAfterBeats * every
}

// silenceOf is base, or as many of the worker's ticks' average gap if
// that is longer (a worker running late is given as much more time), up
// to 3 × base.
func silenceOf(base time.Duration, gap int64) time.Duration {
	return min(max(base, SilentAfterBeats*time.Duration(gap)), 3*base)
}

// nextGap is the average gap between a worker's progress ticks after one
// at ns, the previous at prev: messages less than half an interval apart
// are one tick (several reply subjects), and the first tick or one after
// a long pause teaches nothing. It returns whether ns is a new tick.
func nextGap(prev, ns, avg int64, every time.Duration) (newAvg int64, tick bool) {
	if ns-prev < int64(every)/2 {
		return avg, false
	}
	gap := ns - prev
	if prev == 0 || gap > 20*int64(every) {
		return avg, true
	}
	if avg == 0 {
		avg = int64(every)
	}
	return avg + (gap-avg)/8, true
}

// watchAt is when an attempt's watch fires next: for a worker that sends
// progress (silence > 0), when it will have been silent for silence since
// heard, or sooner, hedge after sent, for a hedge not yet sent; for one
// that sends none, attemptTimeout after sent.
func watchAt(sent, heard int64, silence, hedge, attemptTimeout time.Duration, hedged bool) int64 {
	if silence <= 0 {
		return sent + int64(attemptTimeout)
	}
	at := heard + int64(silence)
	if hedge > 0 && !hedged {
		at = min(at, sent+int64(hedge))
	}
	return at
}

// clientHedge is the hedge of a request whose client asked for h (> 0):
// at least floor, so that a client cannot have each of its requests sent
// to several workers at once. Hedges also draw on the retry budget.
func clientHedge(h, floor time.Duration) time.Duration {
	return max(h, floor)
}

// overShare tells whether a client with n requests open may not open
// another under the bound max (0: no bound).
func overShare(n, max int) bool {
	return max > 0 && n >= max
}

// hedgeDue tells whether an attempt sent at sent, alive, is hedged at now.
func hedgeDue(now, sent int64, hedge time.Duration, hedged bool) bool {
	return hedge > 0 && !hedged && now >= sent+int64(hedge)
}

// Verdict is what an attempt's timeout means for its request.
type Verdict uint8

const (
	// NoRetry: the request timed out on MaxAttempts workers already; its
	// open attempts may still answer before its deadline.
	NoRetry Verdict = iota
	// RetryDenied: another worker could be tried, but the budget is
	// spent; the watch looks again later.
	RetryDenied
	// RetryFirst: try another worker, and count the request among those
	// being retried.
	RetryFirst
	// RetryAgain: try another worker; the request is counted already.
	RetryAgain
)

// retryAfterTimeout decides whether a request whose attempt just timed
// out also goes to another worker: timeouts is how many of its attempts
// timed out, this one included, and retrying whether it is counted among
// the nRetrying requests being retried, of inflight in flight. Only the
// first retry of a request draws on the budget.
func retryAfterTimeout(timeouts, maxAttempts int, retrying bool, b Budget, inflight, nRetrying int) Verdict {
	switch {
	case timeouts >= maxAttempts:
		return NoRetry
	case retrying:
		return RetryAgain
	case !b.Allows(inflight, nRetrying):
		return RetryDenied
	}
	return RetryFirst
}

// holdLength is how long requests are held when the last worker in
// rotation left for cause: holdFor after a silence (a partition may end),
// GoneGrace at most after "no responders" (a broker may have died and its
// workers be moving), and no hold when workers left on purpose.
func holdLength(cause DownCause, holdFor time.Duration) time.Duration {
	switch {
	case holdFor <= 0 || cause == DownLeft:
		return 0
	case cause == DownNoResponders:
		return min(holdFor, GoneGrace)
	}
	return holdFor
}

// quiet tells whether w, which holds attempts, has said nothing for half
// its silence at now: not mute yet, but no place for a retry when another
// worker will do (two workers stopped at once are found silent one after
// the other).
func quiet(w *Worker, now int64) bool {
	if w.progress <= 0 || w.inflight == 0 {
		return false
	}
	return now-w.heard > int64(silenceOf(baseSilence(w.progress), w.gap)/2)
}

// mutedAt tells whether w is mute at now.
func (w *Worker) mutedAt(now int64) bool { return w.muteUntil != 0 && now < w.muteUntil }

// MutedAt tells whether w is mute at now: it fell silent on everything
// it held, and picks pass it over until it is heard again.
func (w *Worker) MutedAt(now int64) bool { return w.mutedAt(now) }

// hear records a sign of life from w at now: it is not mute any more.
func (w *Worker) hear(now int64) {
	w.heard = now
	w.muteUntil = 0
}

// tick records a progress message at now from w.
func (w *Worker) tick(now int64) {
	if w.progress <= 0 {
		return
	}
	if gap, ok := nextGap(w.beat, now, w.gap, w.progress); ok {
		w.beat, w.gap = now, gap
	}
}

// leftMS is the time from now to deadline in whole milliseconds, at least
// one: what a forward tells its worker.
func leftMS(deadline, now int64) int64 {
	return max((deadline-now)/int64(time.Millisecond), 1)
}
