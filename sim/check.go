package sim

import (
	"fmt"
	"strings"

	"github.com/bilancia/bilancia/dispatcher/flight"
)

// The invariants, checked as the run goes.
//
// Safety:
//   - a dispatcher answers a request at most once (per life), and a
//     client ends each request once, with the right result;
//   - a job runs on a second worker only when a hedge was asked, its
//     worker failed it (500), or some fault was active or healed since
//     it started (a worker died or fell silent, a message was lost);
//   - no 503 "no worker" outside a hold while a worker sits idle, live and
//     reachable from the dispatcher, with nothing disturbed for long
//     enough that the dispatcher must know it.
//
// Liveness:
//   - a request open through a calm stretch (no fault active, begun or
//     healed) as long as its work and the recovery time gets its right
//     result: once the faults heal, every request open is answered, and
//     none is lost while the system is whole;
//   - every request ends by its deadline (the client gives up then).

// record is what the invariants know of one request.
type record struct {
	c        *client
	r        *creq
	sends    int
	answers  []*flight.Request // the sends answered, each by its dispatcher
	workers  []string          // the workers that started it, in order
	failed   bool              // a worker answered it 500
	closed   bool
	code     int
	closedAt Time
}

// violation is a broken invariant.
type violation struct {
	at   Time
	what string
}

type checker struct {
	s      *Sim
	trails map[string]*[]fwd // forwards by dispatcher life and request (trail.go)
	byID   map[string]*record
	order  []*record
	fails  []violation
}

func (k *checker) fail(format string, args ...any) {
	v := violation{at: k.s.clock.now, what: fmt.Sprintf(format, args...)}
	k.s.tracef("VIOLATION %s", v.what)
	k.fails = append(k.fails, v)
}

func (k *checker) opened(c *client, r *creq) *record {
	rec := &record{c: c, r: r, sends: 1}
	if k.byID == nil {
		k.byID = make(map[string]*record)
	}
	k.byID[r.id] = rec
	k.order = append(k.order, rec)
	return rec
}

// calm tells whether no fault was active, nor began or healed, and no
// connection or route changed, since t.
func (k *checker) calm(t Time) bool {
	f := k.s.faults
	return f.active == 0 && f.last < t
}

// answered checks a dispatcher's answer to req.
func (k *checker) answered(d *dispatcher, req *flight.Request, code int, text string, result int64, worker string) {
	delete(k.trails, d.inbox+req.ID) // its forwards are over; a later resend starts anew
	rec := k.byID[req.ID]
	if rec == nil {
		return
	}
	for _, a := range rec.answers {
		if a == req {
			k.fail("%s answered one send of %s twice", d.id, req.ID)
		}
	}
	rec.answers = append(rec.answers, req)
	if code == 0 && result != resultOf(rec.r.arg) {
		k.fail("%s relayed result %d for %s (from %s); want %d", d.id, result, req.ID, worker, resultOf(rec.r.arg))
	}
	if code == 500 {
		rec.failed = true
	}
	if code == 503 {
		k.unheld503(d, req.ID, text)
	}
	if code == 503 && !strings.Contains(text, "held") {
		if w := k.idleReachable(d); w != nil {
			k.fail("%s answered %s 503 (%s) while %s sat idle, live and reachable", d.id, req.ID, text, w.id)
		}
	}
}

// idleReachable returns a worker that d must know is live and idle: up,
// healthy, reachable both ways, and nothing disturbed for long enough.
func (k *checker) idleReachable(d *dispatcher) *worker {
	s := k.s
	if !k.calm(s.clock.now - s.cfg.DeadAfter - 2*s.cfg.Heartbeat) {
		return nil
	}
	for _, w := range s.workers {
		if w.dead || w.hung || w.state != "up" || w.fail500 || len(w.jobs) > 0 || !s.reachable(d.node, w.node) {
			continue
		}
		return w
	}
	return nil
}

// reachable tells whether x and y exchange messages now, and their
// brokers know it.
func (s *Sim) reachable(x, y *node) bool {
	n := s.net
	return x.conn >= 0 && y.conn >= 0 && n.linkUp(x, x.conn) && n.linkUp(y, y.conn) &&
		n.routeUp(x.conn, y.conn) && n.sees(x.conn, y.conn) && !x.hung && !y.hung
}

// jobStarted checks a worker starting a job.
func (s *Sim) jobStarted(w *worker, m *Msg) {
	k := &s.check
	rec := k.byID[m.ID]
	if rec == nil {
		return
	}
	for _, o := range rec.workers {
		if o == w.id {
			return // the same worker again: a forward sent again, not a second worker
		}
	}
	// A dispatcher's view of its workers lags their heartbeats by up to
	// DeadAfter and an interval: a fault's echo.
	lag := s.cfg.DeadAfter + s.cfg.Heartbeat
	if len(rec.workers) > 0 && rec.r.hedge == 0 && !rec.failed && k.calm(rec.r.start-lag) {
		k.fail("%s runs %s, which ran on %s already, with no fault since %v before it was sent", w.id, m.ID, strings.Join(rec.workers, ","), lag)
	}
	rec.workers = append(rec.workers, w.id)
	if len(rec.workers) > 1 {
		s.stats.reruns++
	}
}

// closed checks a client ending a request.
func (k *checker) closed(c *client, r *creq, code int, text string, result int64, m *Msg) {
	rec := r.rec
	s := k.s
	if rec.closed {
		k.fail("%s ended %s twice", c.id, r.id)
	}
	rec.closed, rec.code, rec.closedAt = true, code, s.clock.now
	from := "the client"
	if m != nil {
		from = m.From
	}
	if code == 0 {
		s.tracef("%s answered %s: result=%d from=%s", c.id, r.id, result, from)
	} else {
		s.tracef("%s answered %s: error %d %q from=%s", c.id, r.id, code, text, from)
	}
	switch {
	case code == 0 && result != resultOf(r.arg):
		k.fail("%s got result %d for %s; want %d", c.id, result, r.id, resultOf(r.arg))
	case code != 0 && s.queued(r.id):
		// Late behind a worker's backlog of the faults, not lost: how
		// fast a fleet drains its queues is the picker's business.
		s.stats.lateInQueue++
	case code != 0 && k.calm(s.clock.now-s.cfg.Recovery-r.work):
		k.fail("%s got %d %q for %s, open through %v with no fault", c.id, code, text, r.id, s.cfg.Recovery+r.work)
	case code != 0:
		s.stats.failedUnderFaults++
	}
	if s.clock.now > r.dl+Second {
		k.fail("%s ended %s %v after its deadline", c.id, r.id, s.clock.now-r.dl)
	}
}

// queued tells whether a live worker holds request id, waiting for a
// slot or computing it.
func (s *Sim) queued(id string) bool {
	for _, w := range s.workers {
		if w.dead {
			continue
		}
		for _, j := range w.jobs {
			if j.m.ID == id {
				return true
			}
		}
	}
	return false
}

// lateReply is a reply for a request its client ended already: the
// client drops it.
func (k *checker) lateReply(c *client, m *Msg) { k.s.stats.lateReplies++ }

// atEnd checks what must hold once the run is over.
func (k *checker) atEnd() {
	for _, rec := range k.order {
		if !rec.closed {
			k.fail("%s never ended %s (deadline %v)", rec.c.id, rec.r.id, rec.r.dl)
		}
	}
}
