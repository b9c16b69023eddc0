package dispatcher

import (
	"fmt"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// Holding requests through a partition. A dispatcher whose last live
// workers go down because their heartbeats stopped (not because the
// broker said "no responders", nor after draining) may be on the small
// side of a partition, or behind a route that went silent: the workers
// may be fine. For HoldFor from then it parks the requests that find no
// worker instead of answering 503 (the hold). A request is also parked
// when every worker is tried and it waits only on attempts whose workers
// fell silent or went down. When any worker comes up, the parked
// requests that have no attempt left alive go to the workers again,
// those tried before included (their forwards may have been lost in the
// partition). So do they when a worker in rotation is no longer mute:
// it may have moved to a broker this dispatcher reaches (its heartbeats
// never stopped long enough to take it down). When the hold ends with no
// worker back, the parked
// requests with no attempt open (but on workers gone since) get their
// 503. A parked request keeps
// its deadline, and its client keeps getting progress messages. When the
// last live workers go down on "no responders" instead, the hold is
// goneGrace: long enough for workers whose broker died to reconnect to
// another, short enough for a deliberate outage's 503s to come soon.

// goneGrace is the hold when the last live workers went down on "no
// responders": a worker whose broker died answers so while it reconnects
// to another, a few milliseconds, and heartbeats as soon as it is back
// (calcworker); one that died does not come back, and the requests held
// get their 503 this much later.
const goneGrace = 250 * time.Millisecond

// holdFrom starts a hold at now, for holdFor (goneGrace when the workers
// went on "no responders"), unless one runs already or holds are off; it
// returns the hold's length, 0 when it started none.
func (t *inflight) holdFrom(now time.Time, gone bool) time.Duration {
	if t.holdFor <= 0 {
		return 0
	}
	d := t.holdFor
	if gone {
		d = min(d, goneGrace)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holdUntil != 0 {
		return 0
	}
	t.holdUntil = now.Add(d).UnixNano()
	t.holdLen = d
	return d
}

// holdingLocked tells whether a hold runs at ns; t.mu is held.
func (t *inflight) holdingLocked(ns int64) bool { return t.holdUntil != 0 && ns < t.holdUntil }

// parkLocked adds r to the parked requests; t.mu is held.
func (t *inflight) parkLocked(r *request) {
	if !r.parked {
		r.parked = true
		t.parked[r] = struct{}{}
		t.nParked.Add(1)
	}
}

// unparkLocked takes r out of the parked requests; t.mu is held.
func (t *inflight) unparkLocked(r *request) {
	if r.parked {
		r.parked = false
		delete(t.parked, r)
		t.nParked.Add(-1)
	}
}

// stuckLocked tells whether none of r's open attempts is alive: each one's
// worker fell silent on it or went down. t.mu is held.
func (t *inflight) stuckLocked(r *request) bool {
	for _, tok := range r.open {
		if a := t.pending[tok]; a != nil && !a.failed && !a.gone && !a.expired {
			return false
		}
	}
	return true
}

// resume ends the hold, a worker having come up, and returns the parked
// requests with no attempt alive, to be forwarded again: any worker may
// be tried again for them. The others wait on their attempts.
func (t *inflight) resume() []*request {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.holdUntil = 0
	var out []*request
	for r := range t.parked {
		t.unparkLocked(r)
		if !r.done && t.stuckLocked(r) {
			r.from = len(r.tried)
			out = append(out, r)
		}
	}
	return out
}

// holdOver tells, at now, whether a hold has ended with no worker back;
// it then ends it and finishes the parked requests that have no attempt
// open but on workers gone since, which get their 503, and returns them.
func (t *inflight) holdOver(now time.Time) ([]*request, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holdUntil == 0 || t.holdingLocked(now.UnixNano()) {
		return nil, 0
	}
	t.holdUntil = 0
	var out []*request
	for r := range t.parked {
		if r.done || t.allGoneLocked(r) {
			t.unparkLocked(r)
			if !r.done {
				t.finishLocked(r)
				out = append(out, r)
			}
		}
	}
	return out, t.holdLen
}

// holdWake is when the sweep must wake for the hold to end, or next.
func (t *inflight) holdWake(next int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.holdUntil != 0 {
		return min(next, t.holdUntil)
	}
	return next
}

// expired takes the workers that Expire found silent: when they were the
// last live ones, a hold starts, before their requests are sent on.
func (d *Dispatcher) expired(cs []change, now time.Time) {
	if len(cs) == 0 {
		return
	}
	if len(d.mem.Live()) == 0 {
		for _, c := range cs {
			if c.To == wire.StateDown && isSuspect(d.mem.Suspects(), c.ID) {
				if held := d.inflight.holdFrom(now, false); held > 0 {
					d.log.Warn("holding requests: every live worker fell silent at once", "for", held.String())
				}
				break
			}
		}
	}
	d.changes(cs)
}

// workersBack forwards again the parked requests, a worker having come up.
func (d *Dispatcher) workersBack() {
	reqs := d.inflight.resume()
	if len(reqs) == 0 {
		return
	}
	d.log.Info("worker back: forwarding held requests", "requests", len(reqs))
	now := time.Now()
	for _, r := range reqs {
		d.forward(r, now)
	}
}

// unmuted sends the parked requests on when a worker in rotation is not
// mute (any more): the sweep calls it with every expiry.
func (d *Dispatcher) unmuted() {
	if d.inflight.nParked.Load() == 0 {
		return
	}
	for _, w := range d.mem.Live() {
		if !w.sign.muted() {
			d.workersBack()
			return
		}
	}
}

// endHold answers 503 to the requests held until the end of a hold with
// no worker back.
func (d *Dispatcher) endHold(now time.Time) {
	reqs, held := d.inflight.holdOver(now)
	for _, r := range reqs {
		d.fail(r, wire.NewError(wire.CodeUnavailable,
			fmt.Sprintf("no worker available (held %v for one to come back)", held)))
	}
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
