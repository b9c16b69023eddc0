package dispatcher

import (
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Signs of life, in the in-flight table: a worker that announces a
// progress interval in its heartbeat sends, for every request it has held
// for a while, a progress message on the request's reply subject until it
// replies (heard); an attempt fails only when those stop, never because
// the job is long (expire). A client that asks for them gets the same
// from the dispatcher (expireProgress). When a request is answered, the
// workers still on it are told to stop (cancelListLocked).

// liveness is what a dispatcher knows of a worker's signs of life beside
// its heartbeats: when it last heard from it (a reply or a progress
// message), and until when it is mute: silent for longer than its
// silence while it held an attempt, so that retries go elsewhere until
// it is heard again or its heartbeats' verdict is in (DeadAfter).
type liveness struct {
	heard     atomic.Int64 // unix nanoseconds
	muteUntil atomic.Int64 // unix nanoseconds; 0 = not mute
	beat      atomic.Int64 // unix nanoseconds of its last progress tick
	gap       atomic.Int64 // nanoseconds: the average gap between its ticks
}

// tick records a progress message at ns from a worker that sends them
// every interval. The gaps between its ticks (messages less than half an
// interval apart are one tick, on several reply subjects) feed an
// average, so that a worker running late, or a machine or broker that
// delays it, is given as much more time before its silence counts.
func (l *liveness) tick(ns int64, every time.Duration) {
	prev := l.beat.Load()
	if ns-prev < int64(every)/2 {
		return
	}
	l.beat.Store(ns)
	gap := ns - prev
	if prev == 0 || gap > 20*int64(every) {
		return // the first tick, or after a pause: no gap to learn from
	}
	avg := l.gap.Load()
	if avg == 0 {
		avg = int64(every)
	}
	l.gap.Store(avg + (gap-avg)/8)
}

// silence is how long an attempt on the worker may go without a sign of
// life: base (silentAfterBeats intervals), or as many of its ticks'
// average gap if that is longer, up to 3 × base.
func (l *liveness) silence(base time.Duration) time.Duration {
	return min(max(base, silentAfterBeats*time.Duration(l.gap.Load())), 3*base)
}

func (l *liveness) hear(ns int64) {
	l.heard.Store(ns)
	if l.muteUntil.Load() != 0 {
		l.muteUntil.Store(0)
	}
}

func (l *liveness) muted() bool {
	u := l.muteUntil.Load()
	return u != 0 && time.Now().UnixNano() < u
}

// hedgeOf is when r is hedged: its client's Calc-Hedge-Ms, or the
// dispatcher's HedgeAfter; 0 = never.
func (t *inflight) hedgeOf(r *request) time.Duration {
	if r.hedge > 0 {
		return r.hedge
	}
	return t.hedgeAfter
}

// isMute is the picker's skip function for a request's first attempt.
func isMute(w *member) bool { return w.sign.muted() }

// quiet tells whether w, which holds attempts, has said nothing for half
// its silence at now: not mute yet, but no place for a retry when
// another worker will do (two workers stopped at once are found silent
// one after the other).
func quiet(w *member, now int64) bool {
	p := w.progress.Load()
	if p <= 0 || w.inflight.Load() == 0 {
		return false
	}
	base := silentAfterBeats * time.Duration(p) * time.Millisecond
	return now-w.sign.heard.Load() > int64(w.sign.silence(base)/2)
}

// heard records a sign of life, at now, for the attempts a progress
// message names: attempt tok or, when tok is 0, those that ids find on
// worker's shared subject. Nothing is re-armed: the attempt's watch looks
// at heard when it fires.
func (t *inflight) heard(tok uint64, worker string, ids []string, now time.Time) {
	ns := now.UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	if tok != 0 {
		if a := t.pending[tok]; a != nil {
			a.heard = ns
			a.w.sign.hear(ns)
			a.w.sign.tick(ns, a.silence/silentAfterBeats)
		}
		return
	}
	var w *member
	for _, id := range ids {
		if a := t.pending[t.shared[attemptKey{worker, id}]]; a != nil {
			a.heard = ns
			w = a.w
			if a.silence > 0 {
				w.sign.tick(ns, a.silence/silentAfterBeats)
			}
		}
	}
	if w != nil {
		w.sign.hear(ns)
	}
}

// silentFrom ends the watch of every open attempt on worker w, which fell
// silent, and returns their requests, to be sent on at once; each attempt
// stays open, so that a late reply still counts, and is sent on once.
func (t *inflight) silentFrom(w *member) []*request {
	t.mu.Lock()
	defer t.mu.Unlock()
	var reqs []*request
	for _, a := range t.pending {
		if a.w == w && !a.req.done && !a.failed && !a.gone {
			a.failed = true
			t.timers.disarm(&a.to)
			reqs = append(reqs, a.req)
		}
	}
	return reqs
}

// cancelListLocked returns the workers of r's open attempts other than
// except (nil: all of them) that understand cancel messages (those that
// announce progress). t.mu is held on entry and on exit.
func (t *inflight) cancelListLocked(r *request, except *attempt) []*member {
	if len(r.open) == 0 || (len(r.open) == 1 && except != nil) {
		return nil // the common case: one attempt, the one that answered
	}
	var out []*member
	for _, tok := range r.open {
		if a := t.pending[tok]; a != nil && a != except && a.silence > 0 {
			out = append(out, a.w)
		}
	}
	return out
}

// expiryKind is what a due timer does to its request.
type expiryKind int

const (
	expireStale        expiryKind = iota // its request or attempt ended since the pop, or its worker is alive
	expireDeadline                       // the deadline passed: r is done, answer 504
	expireProgress                       // r is still held: tell its client
	expireTimeout                        // an attempt failed (silence, or the attempt timeout): the verdict says whether r goes on
	expireHedge                          // an attempt is slow but alive: the verdict says whether to hedge
	expireSilentWorker                   // an attempt's worker fell silent: every request on it goes on
)

// expiry is what expire decided: attempts is how many workers r tried,
// w the attempt's worker, cancel the workers to tell that r is over.
type expiry struct {
	kind     expiryKind
	w        *member
	attempts int
	verdict  retryVerdict
	cancel   []*member
}

// expire acts on the due timer tm, popped by due at now. A deadline
// finishes its request, or before it, for a client that asked, is a
// progress message to send. An attempt's watch re-arms while its worker
// shows signs of life, may hedge, and otherwise counts a failure against
// the request and decides, within maxAttempts and budget, whether it is
// sent to another worker too. heardAll says that the dispatcher has read
// what reached it: with progress messages still unread, or the sweep late
// (this process starved), silence says nothing, and the watch looks again
// a quarter of the silence later.
func (t *inflight) expire(tm *timer, now time.Time, maxAttempts int, budget natsutil.RetryBudget, heardAll bool) expiry {
	r := tm.req
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.done {
		return expiry{}
	}
	ns := now.UnixNano()
	if tm.att == nil {
		if tm.at < r.deadline {
			tm.at = min(r.deadline, ns+int64(t.progressEvery))
			t.armLocked(tm)
			return expiry{kind: expireProgress}
		}
		e := expiry{kind: expireDeadline, attempts: len(r.tried), cancel: t.cancelListLocked(r, nil)}
		t.finishLocked(r)
		return e
	}
	a := tm.att
	if !t.isOpenLocked(r, a) {
		return expiry{}
	}
	kind := expireTimeout
	silence := a.silence
	if silence > 0 {
		silence = a.w.sign.silence(silence)
	}
	if silence > 0 && ns < a.heard+int64(silence) {
		// Alive: watch on, and hedge if it is time.
		hedgeAfter := t.hedgeOf(r)
		hedge := hedgeAfter > 0 && !a.hedged && ns >= a.sent+int64(hedgeAfter)
		a.hedged = a.hedged || hedge
		if at := watchAt(a.sent, a.heard, silence, hedgeAfter, t.attemptTimeout, a.hedged); at < r.deadline {
			a.to.at = at
			t.armLocked(&a.to)
		}
		if !hedge {
			return expiry{}
		}
		kind = expireHedge
	} else if silence > 0 && !heardAll {
		if at := ns + int64(silence/4); at < r.deadline {
			a.to.at = at
			t.armLocked(&a.to)
		}
		return expiry{}
	} else if silence > 0 && ns-a.w.sign.heard.Load() >= int64(silence) {
		// Not a word from the worker about anything: it is hung or gone.
		a.w.sign.muteUntil.Store(ns + int64(t.muteFor))
		return expiry{kind: expireSilentWorker, w: a.w}
	}
	r.timeouts++
	v := retryAfterTimeout(r.timeouts, maxAttempts, r.retrying, budget, t.count.Load(), t.retrying.Load())
	if v == retryFirst {
		r.retrying = true
		t.retrying.Add(1)
	}
	if v == noRetry && kind == expireTimeout && a.silence > 0 {
		// Every worker it may try fell silent on it (a partition, or
		// workers moving between brokers): parked, it goes out again
		// when a worker comes up or one in rotation is heard (hold.go),
		// instead of waiting for its deadline.
		a.expired = true
		if t.stuckLocked(r) {
			t.parkLocked(r)
		}
	}
	return expiry{kind: kind, w: a.w, attempts: len(r.tried), verdict: v}
}

// progress tells r's client, which asked for it, that r is still held: a
// header-only message on its reply subject.
func (d *Dispatcher) progress(r *request) {
	m := &nats.Msg{Subject: r.reply, Header: nats.Header{
		wire.HdrProgress:   progressValue,
		wire.HdrRequestID:  {r.id},
		wire.HdrDispatcher: d.idValue,
	}}
	_ = d.nc.PublishMsg(m) // a progress message lost is one beat missed
}

// cancel tells each of workers that r has been answered, so that it stops
// computing it: a header-only message on the worker's subject.
func (d *Dispatcher) cancel(r *request, workers []*member) {
	for _, w := range workers {
		m := &nats.Msg{Subject: w.subject, Header: nats.Header{wire.HdrCancel: {r.id}}}
		_ = d.nc.PublishMsg(m)
	}
}
