package dispatcher

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// member is one worker as this dispatcher sees it. Fields under "guarded"
// belong to membership.mu; the atomics are touched on the hot path.
type member struct {
	id      string // immutable
	subject string // immutable
	replyTo string // the dispatcher's reply subject for it; guarded by inflight.mu

	// guarded by membership.mu
	state        string
	reason       string
	lastSeen     time.Time
	hb           wire.Heartbeat
	streams      streamsOf // the processes heard heartbeating as this id
	ejections    int
	ejectedUntil time.Time
	silent       bool // down only because its heartbeats stopped arriving
	drained      bool // an operator took it out of rotation (drain.go)

	inflight  atomic.Int64  // this dispatcher's pending forwards to it
	forwarded atomic.Uint64 // forwards sent to it
	errors    atomic.Uint64 // timeouts and 5xx
	failures  atomic.Int32  // consecutive timeouts and 5xx, for outlier detection
	progress  atomic.Int64  // its progress interval in ms, from its heartbeat; 0 = it sends none
	sign      liveness      // its last reply or progress message (watch.go)
}

// change is a worker's change of state, for the log.
type change struct {
	ID       string
	From, To string
	Reason   string
	Until    time.Time // end of an ejection
}

// membership is the table of workers built from heartbeats. Its methods
// take the time explicitly so that tests drive the clock.
type membership struct {
	deadAfter     time.Duration // no heartbeat for this long: down
	forgetAfter   time.Duration // down for this long: dropped from the table
	reorderWindow time.Duration // a lower seq is overtaken within it, news after it (streams.go)
	maxWorkers    int           // the table's cap
	outlier       OutlierConfig

	mu       sync.Mutex
	members  map[string]*member
	drained  map[string]bool           // ids an operator drained, known or not yet (drain.go)
	down     int                       // members down, which a new worker may evict at the cap
	live     atomic.Pointer[[]*member] // up members in id order; never mutated
	suspects atomic.Pointer[[]*member] // silent members in id order; never mutated
}

// newMembership returns an empty table. A worker is down when no heartbeat
// came for deadAfter, and forgotten after 20 × deadAfter down; a heartbeat
// with a lower seq than one taken from the same process is ignored for
// deadAfter / 3 (one interval, by default) after it. The table holds
// DefaultConfig's MaxWorkers. Zero fields of outlier mean their defaults.
func newMembership(deadAfter time.Duration, outlier OutlierConfig) *membership {
	outlier = outlier.withDefaults()
	m := &membership{deadAfter: deadAfter, forgetAfter: 20 * deadAfter, reorderWindow: deadAfter / deadAfterBeats,
		maxWorkers: DefaultConfig().MaxWorkers, outlier: outlier, members: make(map[string]*member),
		drained: make(map[string]bool)}
	m.live.Store(&[]*member{})
	m.suspects.Store(&[]*member{})
	return m
}

// Get returns the worker with id, or nil.
func (m *membership) Get(id string) *member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members[id]
}

// Live is the current snapshot of workers in rotation, in a stable order.
// The slice must not be modified.
func (m *membership) Live() []*member { return *m.live.Load() }

// Suspects are the workers down only because their heartbeats stopped.
// When no worker is live, they are worth a try: a stall of the broker or
// of the whole machine can silence every heartbeat at once, and a forward
// to a worker that is really gone costs one "no responders".
func (m *membership) Suspects() []*member { return *m.suspects.Load() }

// rebuildLocked publishes new snapshots; m.mu is held on entry and on
// exit.
func (m *membership) rebuildLocked() {
	var live, suspects []*member
	for _, w := range m.members {
		switch l, s := w.inSnapshots(); {
		case l:
			live = append(live, w)
		case s:
			suspects = append(suspects, w)
		}
	}
	byID := func(a, b *member) int { return strings.Compare(a.id, b.id) }
	slices.SortFunc(live, byID)
	slices.SortFunc(suspects, byID)
	m.live.Store(&live)
	m.suspects.Store(&suspects)
}

// inSnapshots tells whether w is in the live and in the suspect
// snapshots; m.mu is held. A drained worker is in neither: it gets no
// new forwards, whatever its heartbeats say.
func (w *member) inSnapshots() (live, suspect bool) {
	if w.drained {
		return false, false
	}
	return w.state == wire.StateUp, w.state == wire.StateDown && w.silent
}

// updateLocked publishes snapshots in which w, whose state changed from
// one where inSnapshots said wasLive and wasSuspect, has its new place:
// a binary search and a copy instead of rebuildLocked's walk and sort of
// the whole table, so that a flood of new ids costs each one O(n) memory
// copying, not O(n log n) string comparisons. m.mu is held on entry and on
// exit.
func (m *membership) updateLocked(w *member, wasLive, wasSuspect bool) {
	live, suspect := w.inSnapshots()
	if live != wasLive {
		m.live.Store(toggled(*m.live.Load(), w, live))
	}
	if suspect != wasSuspect {
		m.suspects.Store(toggled(*m.suspects.Load(), w, suspect))
	}
}

// toggled returns a copy of s, sorted by id, with w in it or not.
func toggled(s []*member, w *member, in bool) *[]*member {
	i, found := slices.BinarySearchFunc(s, w.id, func(e *member, id string) int { return strings.Compare(e.id, id) })
	out := make([]*member, 0, len(s)+1)
	switch {
	case in && found:
		out = append(append(append(out, s[:i]...), w), s[i+1:]...) // a member of the same id forgotten
	case in:
		out = append(append(append(out, s[:i]...), w), s[i:]...)
	case found && s[i] == w:
		out = append(append(out, s[:i]...), s[i+1:]...)
	default:
		out = append(out, s...)
	}
	return &out
}

// setLocked changes a member's state; m.mu is held on entry and on exit.
func (m *membership) setLocked(w *member, to, reason string, changes []change) []change {
	if w.state == to && w.reason == reason {
		return changes
	}
	from := w.state
	if from == wire.StateDown {
		m.down--
	}
	if to == wire.StateDown {
		m.down++
	}
	w.state, w.reason = to, reason
	w.silent = false
	c := change{ID: w.id, From: from, To: to, Reason: reason}
	if to == wire.StateEjected {
		c.Until = w.ejectedUntil
	}
	return append(changes, c)
}

// Heartbeat records hb, received at now, and returns the state changes it
// caused and what about it deserves a warning. hb.Subject is the worker's
// subject, which the caller derives from its id and checks: a member
// keeps the first it is given, and it is read without the lock.
func (m *membership) Heartbeat(now time.Time, hb wire.Heartbeat) ([]change, notice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.members[hb.ID]
	var changes []change
	if w == nil {
		if len(m.members) >= m.maxWorkers && !m.evictDownLocked() {
			return nil, noticeTableFull
		}
		w = &member{id: hb.ID, subject: hb.Subject, drained: m.drained[hb.ID]}
		m.members[hb.ID] = w
	}
	taken, n := w.streams.take(now, hb, m.reorderWindow, m.deadAfter)
	if !taken {
		return nil, n
	}
	w.lastSeen, w.hb = now, hb
	w.progress.Store(hb.ProgressMS)
	wasLive, wasSuspect := w.inSnapshots()
	switch {
	case hb.State == wire.StateDraining && w.streams.otherUp(now, m.deadAfter):
		// Another process with this id is up, and serves its subject.
	case hb.State == wire.StateDraining:
		changes = m.setLocked(w, wire.StateDraining, "worker is draining", changes)
	case w.state == wire.StateEjected:
		// Alive is not healthy: an ejection runs its course.
	case w.state == wire.StateUp:
	case w.state == "":
		w.failures.Store(0)
		changes = m.setLocked(w, wire.StateUp, "first heartbeat", changes)
	case n == noticeContradiction:
		w.failures.Store(0)
		changes = m.setLocked(w, wire.StateUp, "up again after a draining heartbeat from the same process", changes)
	default:
		w.failures.Store(0)
		changes = m.setLocked(w, wire.StateUp, "heartbeat resumed", changes)
	}
	if len(changes) > 0 {
		m.updateLocked(w, wasLive, wasSuspect)
	}
	return changes, n
}

// evictDownLocked drops a down worker from the table to make room for a
// new one, and tells whether there was one; m.mu is held on entry and on
// exit. A full table of workers that are not down refuses newcomers in
// O(1): a flood of new ids costs no scan.
func (m *membership) evictDownLocked() bool {
	if m.down == 0 {
		return false
	}
	for id, w := range m.members {
		if w.state == wire.StateDown {
			delete(m.members, id)
			m.down--
			if w.silent {
				m.suspects.Store(toggled(*m.suspects.Load(), w, false))
			}
			return true
		}
	}
	return false
}

// Expire marks down the workers silent for longer than deadAfter, ends
// ejections that are over and forgets workers long down.
func (m *membership) Expire(now time.Time) []change {
	m.mu.Lock()
	defer m.mu.Unlock()
	var changes []change
	forgotSuspect := false
	for id, w := range m.members {
		silent := now.Sub(w.lastSeen)
		switch {
		case w.state == wire.StateDown && silent > m.forgetAfter:
			delete(m.members, id)
			m.down--
			forgotSuspect = forgotSuspect || w.silent
		case w.state != wire.StateDown && silent > m.deadAfter:
			reason := "no heartbeat for " + silent.Round(time.Millisecond).String()
			wasUp := w.state != wire.StateDraining
			if !wasUp {
				reason = "left after draining"
			}
			changes = m.setLocked(w, wire.StateDown, reason, changes)
			w.silent = wasUp
		case w.state == wire.StateEjected && !now.Before(w.ejectedUntil):
			w.failures.Store(0)
			changes = m.setLocked(w, wire.StateUp, "ejection ended", changes)
		}
	}
	if len(changes) > 0 || forgotSuspect {
		m.rebuildLocked()
	}
	return changes
}

// MarkDown takes a worker out of rotation at once, e.g. when a forward to
// it got "no responders". A new heartbeat brings it back.
func (m *membership) MarkDown(w *member, reason string) []change {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.state == wire.StateDown && !w.silent {
		return nil
	}
	if w.state == wire.StateDraining {
		reason = "left after draining" // its goodbye, not a crash
	}
	wasLive, wasSuspect := w.inSnapshots()
	changes := m.setLocked(w, wire.StateDown, reason, nil)
	m.updateLocked(w, wasLive, wasSuspect)
	return changes
}

// Success records a good reply from w.
func (m *membership) Success(w *member) {
	if w.failures.Load() != 0 {
		w.failures.Store(0)
	}
}

// Failure records a timeout or 5xx from w at now, and ejects w when it has
// failed too often in a row and ejecting it keeps at least half of the
// workers in rotation.
func (m *membership) Failure(now time.Time, w *member, why string) []change {
	w.errors.Add(1)
	n := w.failures.Add(1)
	if m.outlier.Consecutive < 0 || int(n) < m.outlier.Consecutive {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.state != wire.StateUp {
		return nil
	}
	ejected, total := 0, 0
	for _, o := range m.members {
		if o.drained {
			continue // out of rotation whatever its state
		}
		switch o.state {
		case wire.StateEjected:
			ejected++
			total++
		case wire.StateUp:
			total++
		}
	}
	if 2*(ejected+1) > total {
		return nil // ejecting it would leave less than half in rotation
	}
	w.ejections++
	d := min(m.outlier.BaseEjection*time.Duration(w.ejections), m.outlier.MaxEjection)
	w.ejectedUntil = now.Add(d)
	w.failures.Store(0)
	changes := m.setLocked(w, wire.StateEjected, why, nil)
	m.updateLocked(w, true, false) // it was up
	return changes
}

// Snapshot returns the table as status rows, sorted by id.
func (m *membership) Snapshot() []wire.WorkerStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]wire.WorkerStatus, 0, len(m.members))
	for _, w := range m.members {
		out = append(out, wire.WorkerStatus{
			ID: w.id, Subject: w.subject, State: w.state, Reason: w.reason, Silent: w.sign.muted(),
			LastHeartbeat: w.lastSeen, Served: w.hb.Served,
			Forwarded: w.forwarded.Load(), Inflight: w.inflight.Load(),
			Errors: w.errors.Load(), Ejections: w.ejections, Drained: w.drained,
		})
	}
	slices.SortFunc(out, func(a, b wire.WorkerStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Len is how many workers the table holds, in any state.
func (m *membership) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.members)
}
