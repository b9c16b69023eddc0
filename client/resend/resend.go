// Package resend is the client's pure core for one request: when to send
// it again, and when to give up. It reads no clock and draws no random
// number of its own (the caller passes the time, and a random source for
// the backoff's jitter), does no I/O and starts no goroutine, so that
// the real client (package client) and a simulator run the same
// decisions.
//
// A Call starts with Start, which says to send; then each event (a
// progress message, "no responders", the connection back, the timer the
// last Action asked for) returns the next Action: send again, give up,
// or wait until Wake. The reply ends it (the caller needs no Action for
// that).
package resend

import "time"

// Policy is the client's settings for its requests.
type Policy struct {
	// Silence > 0: requests ask for progress messages, and one whose
	// dispatcher stays silent this long (Timer's silence, learnt from
	// the messages' pace, at least this) is sent again. <= 0: a request
	// is sent again after AttemptWait unanswered, doubling each time.
	Silence     time.Duration
	AttemptWait time.Duration
	// MaxAttempts bounds the sends without progress messages (1: no
	// resend). With them, a request is sent again after each silence
	// until its deadline, a route or broker cut off may swallow sends;
	// once a dispatcher said it holds it, after MaxAttempts-1 resends in
	// a row with no word from any, further and further apart (spacing).
	MaxAttempts int
	// Rand returns a number in [0, n): the backoff's jitter.
	Rand func(n int64) int64
}

// Outcome is how a call ended, or OutcomeNone while it goes on.
type Outcome uint8

const (
	OutcomeNone Outcome = iota
	// OutcomeDeadline: no reply by the deadline (504).
	OutcomeDeadline
	// OutcomeNoDispatcher: no reply by the deadline, and the last
	// answer was "no responders": no dispatcher took it (503).
	OutcomeNoDispatcher
)

// Action is what the caller does next.
type Action struct {
	Send bool // publish the request (again)
	// Retry: this send is a resend. Counted: the call now counts among
	// the requests being retried (the budget), until it ends. Denied: a
	// resend was due, and the budget denied it.
	Retry, Counted, Denied bool
	Done                   Outcome
	Wake                   int64 // call Timer then, unless Done
}

// Call is one request's resend state.
type Call struct {
	p                  Policy
	deadline, lastSend int64
	heard              int64 // the last progress message; 0: none yet
	nextSend           int64
	wait               time.Duration // until a resend, without progress messages
	backoff            time.Duration
	sends              int
	// unheard: resends since the last progress message (spacing).
	unheard int
	// backingOff: the last answer was "no responders", and the next send
	// ends the backoff. noDispatcher: so was one since the start, and
	// running out of time is then a 503. kicked: the connection came back
	// since the last send: the next send goes at once. retrying: counted
	// among the requests being retried.
	backingOff, noDispatcher, kicked, retrying bool
}

// Start begins a call at now, to end by deadline: send it.
func Start(p Policy, now, deadline int64) (*Call, Action) {
	c := &Call{p: p, deadline: deadline, lastSend: now, sends: 1, backoff: 5 * time.Millisecond}
	c.wait = p.AttemptWait
	if p.Silence > 0 {
		c.wait = p.Silence
	}
	c.nextSend = now + int64(c.wait)
	return c, Action{Send: true, Wake: c.wake()}
}

// Sends is how many times the request was sent.
func (c *Call) Sends() int { return c.sends }

// Retrying tells whether the call counts among the requests being
// retried.
func (c *Call) Retrying() bool { return c.retrying }

func (c *Call) wake() int64 { return min(c.nextSend, c.deadline) }

// Progress records a progress message at now: a dispatcher holds it.
func (c *Call) Progress(now int64) {
	if now != c.heard {
		c.heard, c.unheard = now, 0
	}
}

// NoDispatcher tells whether "no responders" came since the start: no
// dispatcher took the request.
func (c *Call) NoDispatcher() bool { return c.noDispatcher }

// Heard is when the last progress message came, 0 if none did.
func (c *Call) Heard() int64 { return c.heard }

// NoResponders: no dispatcher listens right now (restarting, or a
// reconnect in progress): back off and send again.
func (c *Call) NoResponders(now int64) Action {
	c.backingOff, c.noDispatcher = true, true
	c.nextSend = now + int64(c.jitter(c.backoff))
	c.backoff = min(c.backoff*2, 500*time.Millisecond)
	return Action{Wake: c.wake()}
}

// Reconnected: the connection was lost and is back, perhaps on another
// broker; what was on its way may be lost, and the dispatcher with the
// broker: send again at once.
func (c *Call) Reconnected(now int64) Action {
	c.kicked = true
	c.nextSend = now
	return Action{Wake: c.wake()}
}

// Timer acts on the timer at now. silence is how long a dispatcher may
// stay silent (Silence, or longer at the pace its messages came);
// budgetAllows whether the retry budget allows one more request to be
// retried.
func (c *Call) Timer(now int64, silence time.Duration, budgetAllows bool) Action {
	if now >= c.deadline {
		if c.noDispatcher {
			return Action{Done: OutcomeNoDispatcher}
		}
		return Action{Done: OutcomeDeadline}
	}
	if now < c.nextSend {
		return Action{Wake: c.wake()}
	}
	progress := c.p.Silence > 0
	if progress && !c.backingOff && !c.kicked {
		// Silent since the last send or progress message?
		if quiet := max(c.lastSend, c.heard) + int64(silence); now < quiet {
			c.nextSend = quiet
			return Action{Wake: c.wake()}
		}
	}
	if !c.backingOff && !c.kicked {
		gap, stop := c.spacing(progress)
		if stop {
			c.nextSend = c.deadline // no more sends: wait for a reply
			return Action{Wake: c.wake()}
		}
		if next := c.lastSend + int64(gap); now < next {
			c.nextSend = next
			return Action{Wake: c.wake()}
		}
	}
	a := Action{Send: true, Retry: true}
	if !c.retrying {
		if !budgetAllows {
			c.nextSend = now + int64(c.wait)
			return Action{Denied: true, Wake: c.wake()}
		}
		c.retrying, a.Counted = true, true
	}
	c.sends++
	c.unheard++
	c.lastSend, c.kicked = now, false
	if c.backingOff {
		c.backingOff = false
	} else if !progress {
		c.wait *= 2
	}
	c.nextSend = now + int64(c.wait)
	a.Wake = c.wake()
	return a
}

// spacing is how long after the last send the next may go, beyond the
// silence, and whether none may. Without progress messages, MaxAttempts
// sends in all. With them, before any dispatcher said it holds the
// request, a send after each silence; once one did, MaxAttempts-1
// resends in a row with no word from any dispatcher go after each
// silence, and the next ones twice as far apart each time, up to 16
// silences: a dispatcher that held the request may have died with it,
// and resends swallowed by a cut route may have left nothing behind, so
// the request is never given up before its deadline, but a client cut
// off for long sends little. A progress message starts the count again.
func (c *Call) spacing(progress bool) (gap time.Duration, stop bool) {
	switch {
	case !progress || c.p.MaxAttempts == 1:
		return 0, c.sends >= c.p.MaxAttempts
	case c.heard == 0 || c.unheard < c.p.MaxAttempts-1:
		return 0, false
	}
	return c.wait << min(c.unheard-(c.p.MaxAttempts-1)+1, 4), false
}

// jitter is d/2 plus a random part of d/2.
func (c *Call) jitter(d time.Duration) time.Duration {
	if c.p.Rand == nil {
		return d
	}
	return d/2 + time.Duration(c.p.Rand(int64(d/2)+1))
}

// Silence is how long a dispatcher may stay silent before a request is
// sent again: base, or 2.5 of its progress messages' average gap if that
// is longer (a dispatcher, broker or machine running late), up to 3 ×
// base.
func Silence(base time.Duration, gap int64) time.Duration {
	return min(max(base, 5*time.Duration(gap)/2), 3*base)
}

// NextGap feeds gap, between two progress messages of one request, into
// the average avg; a gap over 2s is a pause, not a pace.
func NextGap(avg, gap int64) int64 {
	if gap <= 0 || gap > int64(2*time.Second) {
		return avg
	}
	if avg == 0 {
		avg = gap
	}
	return avg + (gap-avg)/8
}
