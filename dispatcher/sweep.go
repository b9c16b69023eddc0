package dispatcher

import (
	"fmt"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// sweep handles attempts' watches, deadlines and progress messages to
// clients, and expires silent workers.
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
		if len(due) > 0 {
			// Silence is news only if what reached us has been read.
			backlog, _, _ := d.subs.replies.Pending()
			for _, tm := range due {
				late := now.UnixNano()-tm.at > int64(d.cfg.ProgressInterval)
				d.expire(tm, now, backlog == 0 && !late)
			}
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

// expire acts on one due timer: a deadline answers 504 and tells the
// workers still on the request to stop; a progress tick tells the client
// its request is still held; an attempt silent too long (or past the
// attempt timeout, for a worker without progress messages) counts against
// the worker and, within the retry budget, sends the request to the next
// worker too; a hedge does the same without blaming the worker.
func (d *Dispatcher) expire(tm *timer, now time.Time, heardAll bool) {
	r := tm.req
	e := d.inflight.expire(tm, now, d.cfg.MaxAttempts, d.budget, heardAll)
	switch e.kind {
	case expireStale:
		return // answered, the attempt ended, or its worker is alive
	case expireProgress:
		d.progress(r)
		return
	case expireDeadline:
		d.fail(r, wire.NewError(wire.CodeDeadline,
			fmt.Sprintf("deadline passed after %v and %d attempt(s)", now.Sub(r.start).Round(time.Millisecond), e.attempts)))
		d.cancel(r, e.cancel)
		return
	}
	if e.verdict == retryDenied {
		d.stats.denied.Add(1)
	}
	if e.kind == expireTimeout {
		d.changes(d.mem.Failure(now, e.w, "repeated timeouts"))
	}
	if e.verdict == retryFirst || e.verdict == retryAgain {
		d.stats.retries.Add(1)
		d.forward(r, now)
	}
}
