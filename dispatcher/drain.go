package dispatcher

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// Operator drains, as HAProxy's "set server state drain": a drained
// worker gets no new forwards from this dispatcher, while it keeps its
// requests in flight and its heartbeats keep its state. The drain is
// held by id, not by member, so that it outlives the worker's restarts
// and its being forgotten, and covers a worker this dispatcher has not
// heard yet; only Resume ends it.

// Errors of Drain and Resume.
var (
	// ErrInvalidWorkerID: the id could not be a worker's (wire.ValidID).
	ErrInvalidWorkerID = errors.New("dispatcher: invalid worker id")
	// ErrTooManyDrained: the drained set holds MaxWorkers ids already.
	ErrTooManyDrained = errors.New("dispatcher: too many drained workers")
)

// drainResult is what a drain or resume found: whether the worker is in
// the table, and whether its drain changed.
type drainResult struct {
	known, changed bool
	state          string // the worker's state from its heartbeats; "" unknown
}

// setDrained drains id (on) or resumes it, and publishes snapshots
// without or with it. It refuses an invalid id, and a new drain beyond
// maxWorkers ids, changing nothing.
func (m *membership) setDrained(id string, on bool) (drainResult, error) {
	if !wire.ValidID(id) {
		return drainResult{}, fmt.Errorf("%w: %q", ErrInvalidWorkerID, clip(id, maxLoggedField))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var res drainResult
	if m.drained[id] == on {
		if w := m.members[id]; w != nil {
			res.known, res.state = true, w.state
		}
		return res, nil
	}
	if on && len(m.drained) >= m.maxWorkers {
		return drainResult{}, fmt.Errorf("%w (%d)", ErrTooManyDrained, m.maxWorkers)
	}
	if on {
		m.drained[id] = true
	} else {
		delete(m.drained, id)
	}
	res.changed = true
	if w := m.members[id]; w != nil {
		res.known, res.state = true, w.state
		wasLive, wasSuspect := w.inSnapshots()
		w.drained = on
		m.updateLocked(w, wasLive, wasSuspect)
		if live, _ := w.inSnapshots(); live && !wasLive {
			m.cameBackLocked(w, time.Now()) // a resumed worker ramps up (slow start)
		}
	}
	return res, nil
}

// Drained lists the drained ids, sorted.
func (m *membership) Drained() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.drained))
	for id := range m.drained {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
