package dispatcher

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// inflight is the table of requests in flight: their pending attempts by
// token, the attempts waiting on their worker's shared reply subject by
// request id, and the timers. Each method takes and releases mu itself;
// a ...Locked method wants it held and keeps it.
type inflight struct {
	count    atomic.Int64 // requests admitted and not yet done
	bytes    atomic.Int64 // their cost (limits.go)
	clients  clientShares // requests in flight by client (limits.go)
	retrying atomic.Int64 // requests with a timeout retry outstanding
	nParked  atomic.Int64 // len(parked), read without the lock

	// Set by init and Start, before any request.
	choose         func(skip func(*member) bool) *member // called with mu held
	attemptTimeout time.Duration
	hedgeAfter     time.Duration // 0: no hedging
	progressEvery  time.Duration // to clients that ask; 0: none
	muteFor        time.Duration // a silent worker is skipped this long, unless heard
	holdFor        time.Duration // how long to hold requests once every worker fell silent (hold.go); 0: never
	inbox          string        // "<inbox>." prefix of forward reply subjects
	wake           chan struct{} // wakes the sweep for a timer due sooner

	mu      sync.Mutex
	pending map[uint64]*attempt
	shared  map[attemptKey]uint64 // attempts on their worker's reply subject
	// byID holds the open requests whose client chose their id, so that a
	// resend of one (same id, same reply subject) joins it (open).
	byID map[string]*request
	// parked: requests waiting for a worker to come up (hold.go), until
	// holdUntil (unix nanoseconds; 0 = no hold) for those with no attempt.
	parked    map[*request]struct{}
	holdUntil int64
	holdLen   time.Duration // the hold's length, for its 503s
	orphans   orphanage     // replies handed over, for their resends (orphan.go)
	nextTok   uint64
	timers    schedule
}

func (t *inflight) init(choose func(skip func(*member) bool) *member, attemptTimeout time.Duration) {
	t.choose, t.attemptTimeout = choose, attemptTimeout
	t.pending = make(map[uint64]*attempt)
	t.shared = make(map[attemptKey]uint64)
	t.byID = make(map[string]*request)
	t.parked = make(map[*request]struct{})
	t.wake = make(chan struct{}, 1)
}

// admit counts a new request in flight, unless max are in flight already;
// then it counts nothing and returns false.
func (t *inflight) admit(max int) bool {
	if n := t.count.Add(1); n > int64(max) {
		t.count.Add(-1)
		return false
	}
	return true
}

// stepKind is what a forward of a request does next.
type stepKind int

const (
	stepSend   stepKind = iota // publish the attempt the step names
	stepWait                   // no worker left to try; an open attempt may still answer
	stepNone                   // no worker left, nothing open: r is done, answer 503
	stepDone                   // r was answered meanwhile: nothing to do
	stepJoined                 // r is a resend of a request still open here: that one answers it
	stepOrphan                 // r is a resend of a request whose reply was handed over: answer it with that (orphan.go)
)

// step is a forward decided under the lock, to be carried out without it.
type step struct {
	kind    stepKind
	w       *member // stepSend: the worker
	tok     uint64  // stepSend: the attempt's token
	replyTo string  // stepSend: the worker's shared reply subject, or "" for one of the attempt's own
	tried   int     // stepNone: the workers r went to
	orphan  *orphan // stepOrphan: the reply
}

// open arms r's deadline, timeout from now (or first its progress
// message, if its client asked for them), and opens its first attempt,
// under one lock. A request whose client chose its id (keyed) and that
// resends one still open here, to the same reply subject, joins it
// instead: it is uncounted, and the open one's reply answers both sends.
func (t *inflight) open(r *request, now time.Time, timeout time.Duration) step {
	r.deadline = now.Add(timeout).UnixNano()
	r.dl = timer{at: r.deadline, req: r, idx: -1}
	if r.progress && t.progressEvery > 0 {
		r.dl.at = min(r.deadline, now.Add(t.progressEvery).UnixNano())
	}
	t.mu.Lock()
	if r.keyed {
		if o := t.byID[r.id]; o == nil {
			if len(t.orphans.byID) > 0 {
				if o := t.orphans.takeLocked(r.id, r.reply, now.UnixNano()); o != nil {
					t.mu.Unlock()
					t.count.Add(-1)
					t.release(r)
					return step{kind: stepOrphan, orphan: o}
				}
			}
			t.byID[r.id] = r
		} else if o.reply == r.reply {
			t.mu.Unlock()
			t.count.Add(-1)
			t.release(r)
			return step{kind: stepJoined}
		} else {
			r.keyed = false // another client's id: served on its own
		}
	}
	t.armLocked(&r.dl)
	s := t.nextLocked(r, now)
	t.mu.Unlock()
	return s
}

// next opens r's next attempt, on a worker it has not tried.
func (t *inflight) next(r *request, now time.Time) step {
	t.mu.Lock()
	s := t.nextLocked(r, now)
	t.mu.Unlock()
	return s
}

// nextLocked picks a worker r has not tried and opens an attempt on it,
// its watch armed unless the deadline comes first. With none left, r
// waits for its open attempts (parked if none of them is alive), or is
// parked during a hold, or is finished if it has no attempt open, or none
// on a worker still up. t.mu is held on entry and on exit.
func (t *inflight) nextLocked(r *request, now time.Time) step {
	if r.done {
		return step{kind: stepDone}
	}
	w := t.choose(r.skip(true))
	if w == nil {
		w = t.choose(r.skip(false)) // every worker left is mute: try one all the same
	}
	if w == nil {
		if len(r.open) > 0 && !t.allGoneLocked(r) {
			if t.stuckLocked(r) {
				t.parkLocked(r) // until a worker comes up
			}
			return step{kind: stepWait}
		}
		if t.holdingLocked(now.UnixNano()) {
			t.parkLocked(r)
			return step{kind: stepWait}
		}
		tried := len(r.tried)
		t.finishLocked(r)
		return step{kind: stepNone, tried: tried}
	}
	t.nextTok++
	tok := t.nextTok
	a := &r.first
	if len(r.tried) > 0 {
		a = new(attempt)
	}
	*a = attempt{req: r, w: w, sent: now.UnixNano()}
	a.heard = a.sent
	if p := w.progress.Load(); p > 0 {
		a.silence = silentAfterBeats * time.Duration(p) * time.Millisecond
	}
	a.to = timer{req: r, att: a, idx: -1}
	t.pending[tok] = a
	key := attemptKey{w.id, r.id}
	if _, dup := t.shared[key]; !dup {
		a.shared = true
		t.shared[key] = tok
		if w.replyTo == "" {
			w.replyTo = t.inbox + w.id
		}
	}
	s := step{kind: stepSend, w: w, tok: tok}
	if a.shared {
		s.replyTo = w.replyTo
	}
	w.inflight.Add(1) // under mu: dropLocked's -1 cannot come first
	r.open = append(r.open, tok)
	r.tried = append(r.tried, w)
	if at := watchAt(a.sent, a.heard, a.silence, t.hedgeOf(r), t.attemptTimeout, false); at < r.deadline {
		a.to.at = at
		t.armLocked(&a.to)
	}
	return s
}

// tokenSubject is the reply subject of an attempt that cannot share its
// worker's: "<inbox>t.<token>".
func (t *inflight) tokenSubject(tok uint64) string {
	var buf [16]byte
	return t.inbox + "t." + string(strconv.AppendUint(buf[:0], tok, 36))
}

// abort ends attempt tok of r, whose forward could not be published, and
// r with it unless r is done already; it tells whether it ended r, which
// then needs its answer.
func (t *inflight) abort(r *request, tok uint64) (ended bool) {
	t.mu.Lock()
	done := r.done
	t.dropLocked(tok)
	if !done {
		t.finishLocked(r)
	}
	t.mu.Unlock()
	return !done
}

// replyKind is what a worker's reply does to its request.
type replyKind int

const (
	replyLate         replyKind = iota // its request was answered already: drop it
	replyNoResponders                  // the worker has gone; the table is unchanged
	replyRetry                         // a fault another worker may not have: the attempt ended, r goes on
	replyFinal                         // r is done: relay the reply
)

// reply ends what a worker's reply answers: attempt tok or, when tok is
// 0, the attempt key finds on the worker's shared subject. A fault (a 500
// or 503) ends only its attempt while r has tried fewer than maxAttempts
// workers; any other reply ends r, and attempts is then how many workers
// r tried, cancel the workers of its other attempts still open.
func (t *inflight) reply(tok uint64, key attemptKey, noResponders, fault bool, maxAttempts int) (a *attempt, kind replyKind, attempts int, cancel []*member) {
	t.mu.Lock()
	if tok == 0 {
		tok = t.shared[key]
	}
	a = t.pending[tok]
	switch {
	case a == nil:
		kind = replyLate
	case noResponders:
		kind = replyNoResponders
	case fault && len(a.req.tried) < maxAttempts:
		t.dropLocked(tok)
		kind = replyRetry
	default:
		attempts = len(a.req.tried)
		cancel = t.cancelListLocked(a.req, a)
		t.finishLocked(a.req)
		kind = replyFinal
	}
	t.mu.Unlock()
	return a, kind, attempts, cancel
}

// due pops the timers due at now into out.
func (t *inflight) due(now time.Time, out []*timer) []*timer {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.timers.popDue(now.UnixNano(), out)
}

// plan records that the sweep wakes at next, or sooner for a timer due
// sooner, and returns when.
func (t *inflight) plan(next int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.timers.plan(next)
}

// goneFrom marks the open attempts on worker id, which went down, and
// returns their requests, to be sent on. An attempt is marked once: a
// request is sent on once per worker lost.
func (t *inflight) goneFrom(id string) []*request {
	t.mu.Lock()
	defer t.mu.Unlock()
	var reqs []*request
	for _, a := range t.pending {
		if a.w.id == id && !a.req.done && !a.gone && !a.failed {
			a.gone = true
			reqs = append(reqs, a.req)
		}
	}
	return reqs
}

// finishAll finishes every request still open and returns them, each to
// get its one answer.
func (t *inflight) finishAll() []*request {
	t.mu.Lock()
	defer t.mu.Unlock()
	var left []*request
	for _, a := range t.pending {
		if !a.req.done {
			t.finishLocked(a.req)
			left = append(left, a.req)
		}
	}
	return left
}

// armLocked arms tm and wakes the sweep if tm is due before it planned to
// wake. t.mu is held on entry and on exit.
func (t *inflight) armLocked(tm *timer) {
	if t.timers.arm(tm) {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// isOpenLocked tells whether attempt a of r still waits for its reply;
// t.mu is held on entry and on exit. r.open is short: one entry per
// worker tried.
func (t *inflight) isOpenLocked(r *request, a *attempt) bool {
	for _, tok := range r.open {
		if t.pending[tok] == a {
			return true
		}
	}
	return false
}

// allGoneLocked tells whether every open attempt of r is on a worker
// declared down since it was sent: with no live worker left, r then gets
// its 503 now rather than at its deadline. t.mu is held on entry and on
// exit.
func (t *inflight) allGoneLocked(r *request) bool {
	for _, tok := range r.open {
		if a := t.pending[tok]; a != nil && !a.gone {
			return false
		}
	}
	return true
}

// dropLocked ends attempt tok; t.mu is held on entry and on exit.
func (t *inflight) dropLocked(tok uint64) {
	a := t.pending[tok]
	if a == nil {
		return
	}
	delete(t.pending, tok)
	if a.shared {
		delete(t.shared, attemptKey{a.w.id, a.req.id})
	}
	t.timers.disarm(&a.to)
	a.w.inflight.Add(-1)
	r := a.req
	for i, o := range r.open {
		if o == tok {
			r.open = append(r.open[:i], r.open[i+1:]...)
			break
		}
	}
}

// finishLocked marks r done and ends its open attempts, so that late
// replies are dropped; t.mu is held on entry and on exit.
func (t *inflight) finishLocked(r *request) {
	r.done = true
	if r.keyed {
		delete(t.byID, r.id)
	}
	t.unparkLocked(r)
	t.timers.disarm(&r.dl)
	for len(r.open) > 0 {
		t.dropLocked(r.open[0])
	}
	if r.retrying {
		r.retrying = false
		t.retrying.Add(-1)
	}
	t.count.Add(-1)
	t.release(r)
}
