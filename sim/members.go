package sim

import (
	"github.com/bilancia/bilancia/dispatcher/flight"
)

// The dispatcher shell's membership decisions, as dispatcher/membership.go
// makes them from heartbeats: a worker is up from its first heartbeat,
// draining from a draining one, down after DeadAfter without one (silent:
// maybe a partition), or at once on "no responders"; a heartbeat brings a
// down worker back. One process's heartbeats are ordered by seq for a
// short window; a new started_at is a new process of the id. Ejection
// after repeated failures is not modelled.

type member struct {
	id       string
	fw       *flight.Worker
	state    string // up, draining, down
	silent   bool   // down only because its heartbeats stopped
	noResp   bool   // down on "no responders"
	downAt   Time
	lastSeen Time
	started  Time
	seq      uint64
	seqAt    Time
	pg       Time
}

// members is one dispatcher's table, in id order: no map decides an order.
type members struct {
	list []*member
	rr   int // round robin's next position
}

func (ms *members) get(id string) *member {
	for _, m := range ms.list {
		if m.id == id {
			return m
		}
	}
	return nil
}

func (ms *members) add(id string) *member {
	m := &member{id: id, fw: &flight.Worker{ID: id}}
	m.fw.Ref = m
	i := 0
	for i < len(ms.list) && ms.list[i].id < id {
		i++
	}
	ms.list = append(ms.list, nil)
	copy(ms.list[i+1:], ms.list[i:])
	ms.list[i] = m
	return m
}

func (ms *members) anyUp() bool {
	for _, m := range ms.list {
		if m.state == "up" {
			return true
		}
	}
	return false
}

// Pick is round robin over the workers up, then, when none is left, over
// the suspects (down for silence alone), never one skip passes over.
func (ms *members) Pick(skip *flight.Skip) *flight.Worker {
	n := len(ms.list)
	for pass := 0; pass < 2; pass++ {
		for i := 0; i < n; i++ {
			m := ms.list[(ms.rr+i)%n]
			ok := m.state == "up"
			if pass == 1 {
				ok = m.state == "down" && m.silent
			}
			if ok && !skip.Skips(m.fw) {
				ms.rr = (ms.rr + i + 1) % n
				return m.fw
			}
		}
	}
	return nil
}

// AnyLive tells whether a worker up is not skipped.
func (ms *members) AnyLive(skip *flight.Skip) bool {
	for _, m := range ms.list {
		if m.state == "up" && !skip.Skips(m.fw) {
			return true
		}
	}
	return false
}

// Inflight is told the attempts open on a worker; round robin ignores it.
func (ms *members) Inflight(*flight.Worker, int) {}

// heartbeat takes a heartbeat at now and returns the worker's change:
// the event for the core, or none.
func (ms *members) heartbeat(hb *Msg, now, deadAfter Time) (m *member, ev flight.EventKind, cause flight.DownCause) {
	m = ms.get(hb.From)
	if m == nil {
		m = ms.add(hb.From)
	}
	if hb.Started == m.started && m.seq != 0 && hb.Seq <= m.seq && now-m.seqAt < deadAfter/3 {
		return m, flight.EvNone, 0 // overtaken
	}
	m.started, m.seq, m.seqAt, m.lastSeen = hb.Started, hb.Seq, now, now
	pgChanged := m.pg != hb.Pg
	m.pg = hb.Pg
	switch {
	case hb.State == "draining" && m.state != "draining":
		// Out of rotation; what it holds stays with it, as the shell has it.
		m.state, m.silent, m.noResp = "draining", false, false
	case hb.State == "up" && m.state != "up":
		m.state, m.silent, m.noResp = "up", false, false
		return m, flight.EvWorkerUp, 0
	case pgChanged:
		return m, flight.EvProgressEvery, 0
	}
	return m, flight.EvNone, 0
}

// expire marks down the workers silent past deadAfter and returns them:
// silent, those that were up; the others left after draining.
func (ms *members) expire(now, deadAfter Time) (down []*member) {
	for _, m := range ms.list {
		if m.state != "down" && m.state != "" && now-m.lastSeen > deadAfter {
			m.silent = m.state == "up"
			m.state, m.noResp, m.downAt = "down", false, now
			down = append(down, m)
		}
	}
	return down
}
