package sim

import (
	"strings"

	"github.com/bilancia/bilancia/dispatcher/flight"
)

// Two invariants on what a dispatcher does, beside what its clients see.
//
// Sent on only on evidence: a dispatcher forwards a request it holds to
// a worker (another, or the same again) only when one of its earlier
// attempts may have failed: not while every worker it went to computes
// it, on the same connection, and said so within the last silence
// window, unless a hedge was asked.
//
// No 503 while the workers merely move: a "no worker available" answered
// outside a hold, while a worker that was up stays alive and becomes
// reachable from the dispatcher within the hold that "no responders"
// starts (flight.GoneGrace), is a request lost to a broker's death.

// fwd is one forward of a request by one dispatcher's life.
type fwd struct {
	w       string
	heard   Time   // the last progress message naming the request from w; 0: none
	epoch   uint64 // w's connection when heard
	life    uint64 // w's process when heard
	replied bool
}

// heardWindow is how recently a worker must have named a request for a
// dispatcher to have no reason to send it on: under the shortest silence
// (4 progress intervals), with room for the messages' hops.
const heardWindow = 300 * Millisecond

func (s *Sim) workerByID(id string) *worker {
	for _, w := range s.workers {
		if w.id == id {
			return w
		}
	}
	return nil
}

func (k *checker) trailOf(d *dispatcher, id string) *[]fwd {
	if k.trails == nil {
		k.trails = make(map[string]*[]fwd)
	}
	key := d.inbox + id // the inbox names the dispatcher's life
	t := k.trails[key]
	if t == nil {
		t = new([]fwd)
		k.trails[key] = t
	}
	return t
}

// forwarded checks d's forward of req to worker to.
func (k *checker) forwarded(d *dispatcher, req *flight.Request, to string) {
	t := k.trailOf(d, req.ID)
	now := k.s.clock.now
	// An attempt alive beyond doubt: its worker up, in the dispatcher's
	// table too (a drain, or "no responders" however stale, is evidence
	// the design acts on), computing it, and saying so, on the same
	// connection.
	alive := func(f fwd) bool {
		w, m := k.s.workerByID(f.w), d.mem.get(f.w)
		return !f.replied && f.heard != 0 && now-f.heard < heardWindow && k.s.holds(w, req.ID) &&
			w.life == f.life && w.epoch == f.epoch && !w.hung && w.state == "up" && m != nil && m.state == "up"
	}
	evidence := len(*t) == 0 // a first forward
	for _, f := range *t {
		evidence = evidence || !alive(f) // an attempt that may have failed
	}
	if !evidence && req.Hedge > 0 {
		k.s.stats.hedges++ // sent on while its workers compute it: a hedge, as asked
		evidence = true
	}
	if !evidence {
		f := (*t)[len(*t)-1]
		k.fail("%s sends %s to %s while every worker it sent it to computes it (%s said so %v ago)",
			d.id, req.ID, to, f.w, now-f.heard)
	}
	*t = append(*t, fwd{w: to})
}

// heard records a progress message from worker w naming ids, or its reply.
func (k *checker) heard(d *dispatcher, m *Msg) {
	w := k.s.workerByID(m.From)
	if w == nil {
		return
	}
	ids := m.IDs
	if m.Kind == KReply {
		ids = []string{m.ID}
	}
	for _, id := range ids {
		t := k.trails[d.inbox+id]
		if t == nil {
			continue
		}
		for i := range *t {
			f := &(*t)[i]
			if f.w != w.id {
				continue
			}
			if m.Kind == KReply {
				f.replied = true
			} else {
				f.heard, f.epoch, f.life = k.s.clock.now, w.epoch, w.life
			}
		}
	}
}

// holds tells whether w, alive, holds request id.
func (s *Sim) holds(w *worker, id string) bool {
	if w == nil || w.dead {
		return false
	}
	for _, j := range w.jobs {
		if j.m.ID == id {
			return true
		}
	}
	return false
}

// unheld503 checks, a hold later, a 503 "no worker" that d answered
// outside a hold within a hold of its workers going down on "no
// responders": one of them alive in the same process and reachable from d
// by then was only moving (its broker died), and a hold would have
// served the request.
func (k *checker) unheld503(d *dispatcher, id, text string) {
	if !strings.HasPrefix(text, "no worker available") || strings.Contains(text, "held") {
		return
	}
	if d.mem.anyUp() {
		return // a worker is left in rotation (if failing): no hold is due
	}
	type was struct {
		w    *worker
		life uint64
	}
	var gone []was
	now := k.s.clock.now
	for _, m := range d.mem.list {
		if m.state != "down" || !m.noResp || now-m.downAt >= flight.GoneGrace {
			continue
		}
		if w := k.s.workerByID(m.id); w != nil && !w.dead && !w.hung && w.state == "up" && !w.fail500 {
			gone = append(gone, was{w, w.life})
		}
	}
	if len(gone) == 0 {
		return
	}
	life := d.life
	k.s.clock.after(flight.GoneGrace, func() {
		if d.life != life || d.dead || d.hung {
			return
		}
		for _, g := range gone {
			w := g.w
			if w.life == g.life && !w.dead && !w.hung && w.state == "up" && k.s.reachable(d.node, w.node) {
				k.fail("%s answered %s 503 (%s) at %s, %s down on no responders since; %s was only moving: reachable again within %v",
					d.id, id, text, strings.TrimSpace(stamp(now)), w.id, w.id, flight.GoneGrace)
				return
			}
		}
	})
}
