package dispatcher

import (
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
	var (
		due    []*timer
		again  []*request // to send on, once every due timer is seen
		silent []*member  // workers fallen silent
	)
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
				again, silent = d.expire(tm, now, backlog == 0 && !late, again, silent)
			}
			// Workers found silent are skipped by every retry, those of
			// this round included.
			for _, r := range again {
				d.forward(r, now)
			}
			for _, w := range silent {
				d.silentWorker(w, now)
			}
			clear(again)
			clear(silent)
			again, silent = again[:0], silent[:0]
		}
		clear(due)
		if gap := now.Sub(lastExpire); gap >= expireEvery {
			lastExpire = now
			if n, _, _ := d.subs.heartbeats.Pending(); silenceIsNews(n, gap, d.cfg.DeadAfter) {
				d.expired(d.mem.Expire(now), now)
			}
			d.unmuted()
		}
		d.endHold(now)
		next := d.inflight.plan(d.inflight.holdWake(lastExpire.Add(expireEvery).UnixNano()))
		t.Reset(sleepUntil(next, time.Now().UnixNano(), d.cfg.Tick))
	}
}

// expire acts on one due timer: a deadline answers 504 and tells the
// workers still on the request to stop; a progress tick tells the client
// its request is still held; an attempt silent too long (or past the
// attempt timeout, for a worker without progress messages) counts against
// the worker and, within the retry budget, adds the request to again; a
// hedge does the same without blaming the worker; an attempt whose worker
// has said nothing at all for as long adds the worker to silent.
func (d *Dispatcher) expire(tm *timer, now time.Time, heardAll bool, again []*request, silent []*member) ([]*request, []*member) {
	r := tm.req
	e := d.inflight.expire(tm, now, d.cfg.MaxAttempts, d.budget, heardAll)
	switch e.kind {
	case expireStale:
		return again, silent // answered, the attempt ended, or its worker is alive
	case expireProgress:
		d.progress(r)
		return again, silent
	case expireDeadline:
		d.fail(r, wire.DispatcherDeadline(r.timeout, time.Unix(0, r.deadline).Sub(r.start), e.attempts))
		d.cancel(r, e.cancel)
		return again, silent
	case expireSilentWorker:
		d.changes(d.mem.Failure(now, e.w, "repeated timeouts"))
		return again, append(silent, e.w)
	}
	if e.verdict == retryDenied {
		d.stats.denied.Add(1)
	}
	if e.kind == expireTimeout {
		d.changes(d.mem.Failure(now, e.w, "repeated timeouts"))
	}
	if e.verdict == retryFirst || e.verdict == retryAgain {
		d.stats.retries.Add(1)
		again = append(again, r)
	}
	return again, silent
}

// silentWorker sends on every request waiting on w, which fell silent: no
// reply and no progress message for anything it holds for 4 of its
// progress intervals. Its attempts stay open, so that a late reply still
// counts; its heartbeats decide whether it is down.
func (d *Dispatcher) silentWorker(w *member, now time.Time) {
	reqs := d.inflight.silentFrom(w)
	if len(reqs) > 0 {
		d.log.Info("worker silent", "worker", w.id, "requests", len(reqs))
	}
	d.metrics.silence.Add(uint64(len(reqs)))
	for _, r := range reqs {
		d.stats.retries.Add(1)
		d.forward(r, now)
	}
}
