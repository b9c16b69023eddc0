package dispatcher

import (
	"fmt"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// sweep handles attempt timeouts and deadlines, and expires silent workers.
// It sleeps until the next of them is due (never less than Tick), so that
// an idle dispatcher does not wake every Tick.
func (d *Dispatcher) sweep() {
	defer d.wg.Done()
	expireEvery := max(d.cfg.Heartbeat/4, d.cfg.Tick)
	lastExpire := time.Now()
	t := time.NewTimer(d.cfg.Tick)
	defer t.Stop()
	var due []*timer
	for {
		select {
		case <-d.quit:
			return
		case <-d.inflight.wake:
		case <-t.C:
		}
		now := time.Now()
		due = d.inflight.due(now, due[:0])
		for _, tm := range due {
			d.expire(tm, now)
		}
		clear(due)
		if gap := now.Sub(lastExpire); gap >= expireEvery {
			lastExpire = now
			if n, _, _ := d.subs.heartbeats.Pending(); silenceIsNews(n, gap, d.cfg.DeadAfter) {
				d.changes(d.mem.Expire(now))
			}
		}
		next := d.inflight.plan(lastExpire.Add(expireEvery).UnixNano())
		t.Reset(sleepUntil(next, time.Now().UnixNano(), d.cfg.Tick))
	}
}

// expire acts on one due timer: a deadline answers 504; an attempt
// timeout counts against the worker and, within the retry budget, sends
// the request to the next worker too.
func (d *Dispatcher) expire(tm *timer, now time.Time) {
	r := tm.req
	kind, w, attempts, verdict := d.inflight.expire(tm, d.cfg.MaxAttempts, d.budget)
	switch kind {
	case expireStale:
		return // answered, or the attempt ended, since the pop
	case expireDeadline:
		d.fail(r, wire.NewError(wire.CodeDeadline,
			fmt.Sprintf("deadline passed after %v and %d attempt(s)", now.Sub(r.start).Round(time.Millisecond), attempts)))
		return
	}
	if verdict == retryDenied {
		d.stats.denied.Add(1)
	}
	d.changes(d.mem.Failure(now, w, "repeated timeouts"))
	if verdict == retryFirst || verdict == retryAgain {
		d.stats.retries.Add(1)
		d.forward(r, now)
	}
}
