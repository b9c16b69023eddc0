package dispatcher

import (
	"time"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// sweep is the core's clock: it wakes at the earliest timer the core
// asked for (never less than Tick apart, so that a burst of timers is
// handled in rounds), feeds it EvTick, and expires silent workers every
// quarter heartbeat, so that an idle dispatcher does not wake every Tick.
func (d *Dispatcher) sweep() {
	defer d.wg.Done()
	expireEvery := max(d.cfg.Heartbeat/4, d.cfg.Tick)
	lastExpire := time.Now()
	t := time.NewTimer(d.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-d.quit:
			return
		case <-d.inflight.wake:
		case <-t.C:
		}
		now := time.Now()
		// Silence is news only if what reached us has been read.
		backlog, _, _ := d.subs.replies.Pending()
		buf, next := d.tick(flight.Event{Kind: flight.EvTick, Now: now.UnixNano(), Backlog: backlog > 0},
			lastExpire.Add(expireEvery).UnixNano())
		d.act(*buf)
		release(buf)
		if gap := now.Sub(lastExpire); gap >= expireEvery {
			lastExpire = now
			if n, _, _ := d.subs.heartbeats.Pending(); silenceIsNews(n, gap, d.cfg.DeadAfter) {
				d.expired(d.mem.Expire(now))
			}
			next = d.plan(lastExpire.Add(expireEvery).UnixNano())
		}
		t.Reset(sleepUntil(next, time.Now().UnixNano(), d.cfg.Tick))
	}
}

// plan records that the sweep wakes at limit, or sooner for a timer of
// the core due sooner, and returns when.
func (d *Dispatcher) plan(limit int64) int64 {
	t := &d.inflight
	t.mu.Lock()
	defer t.mu.Unlock()
	t.planned = min(t.next, limit)
	return t.planned
}

// expired takes the workers that Expire found silent or gone after
// draining. Those that were up may be on the other side of a partition
// (flight.DownSilent): they go first, so that a hold they start covers
// the requests of the others too.
func (d *Dispatcher) expired(cs []change) {
	if len(cs) == 0 {
		return
	}
	suspects := d.mem.Suspects()
	var silent, rest []change
	for _, c := range cs {
		if c.To == wire.StateDown && isSuspect(suspects, c.ID) {
			silent = append(silent, c)
		} else {
			rest = append(rest, c)
		}
	}
	d.changes(silent, flight.DownSilent)
	d.changes(rest, flight.DownLeft)
}

// isSuspect tells whether id is among suspects: down for silence alone.
func isSuspect(suspects []*member, id string) bool {
	for _, w := range suspects {
		if w.id == id {
			return true
		}
	}
	return false
}
