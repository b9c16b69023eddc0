package dispatcher

import (
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func hb(id string, seq uint64, state string) wire.Heartbeat {
	return wire.Heartbeat{ID: id, Subject: "calc.worker." + id, State: state, Seq: seq, StartedAt: t0}
}

// beat gives m a heartbeat and returns the changes it caused.
func beat(m *membership, at time.Time, h wire.Heartbeat) []change {
	cs, _ := m.Heartbeat(at, h)
	return cs
}

func liveIDs(m *membership) []string {
	var ids []string
	for _, w := range m.Live() {
		ids = append(ids, w.id)
	}
	return ids
}

func states(m *membership) map[string]string {
	out := map[string]string{}
	for _, s := range m.Snapshot() {
		out[s.ID] = s.State
	}
	return out
}

func TestMembershipLifecycle(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{})
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	steps := []struct {
		name    string
		do      func() []change
		changes []string // "id:to"
		live    []string
	}{
		{"first heartbeat brings a worker up", func() []change { return beat(m, at(0), hb("b", 1, wire.StateUp)) }, []string{"b:up"}, []string{"b"}},
		{"second worker, live set in id order", func() []change { return beat(m, at(0), hb("a", 1, wire.StateUp)) }, []string{"a:up"}, []string{"a", "b"}},
		{"repeated heartbeat changes nothing", func() []change { return beat(m, at(time.Second), hb("a", 2, wire.StateUp)) }, nil, []string{"a", "b"}},
		{"not yet expired at the limit", func() []change { return m.Expire(at(3 * time.Second)) }, nil, []string{"a", "b"}},
		{"silent b expires", func() []change { return m.Expire(at(3*time.Second + time.Millisecond)) }, []string{"b:down"}, []string{"a"}},
		{"a new heartbeat brings b back", func() []change { return beat(m, at(4*time.Second), hb("b", 5, wire.StateUp)) }, []string{"b:up"}, []string{"a", "b"}},
		{"a stale heartbeat is ignored", func() []change { return beat(m, at(4*time.Second), hb("b", 4, wire.StateDraining)) }, nil, []string{"a", "b"}},
		{"draining leaves the rotation", func() []change { return beat(m, at(4*time.Second), hb("a", 6, wire.StateDraining)) }, []string{"a:draining"}, []string{"b"}},
		{"b heartbeats on", func() []change { return beat(m, at(6*time.Second), hb("b", 6, wire.StateUp)) }, nil, []string{"b"}},
		{"a drained worker goes down when silent", func() []change { return m.Expire(at(7*time.Second + time.Millisecond)) }, []string{"a:down"}, []string{"b"}},
		{"no responders marks down at once", func() []change { return m.MarkDown(m.members["b"], "no responders") }, []string{"b:down"}, nil},
		{"marking down twice changes nothing", func() []change { return m.MarkDown(m.members["b"], "no responders") }, nil, nil},
		{"a restarted worker (new started_at, seq 1) comes back", func() []change {
			h := hb("a", 1, wire.StateUp)
			h.StartedAt = at(8 * time.Second)
			return beat(m, at(8*time.Second), h)
		}, []string{"a:up"}, []string{"a"}},
		{"workers long down are forgotten", func() []change { return m.Expire(at(6*time.Second + 61*time.Second)) }, []string{"a:down"}, nil},
	}
	for _, s := range steps {
		got := s.do()
		var gotS []string
		for _, c := range got {
			gotS = append(gotS, c.ID+":"+c.To)
		}
		if !equal(gotS, s.changes) {
			t.Fatalf("%s: changes = %v; want %v", s.name, gotS, s.changes)
		}
		if live := liveIDs(m); !equal(live, s.live) {
			t.Fatalf("%s: live = %v; want %v", s.name, live, s.live)
		}
	}
	if n := m.Len(); n != 1 {
		t.Fatalf("after forgetting b: Len = %d; want 1 (a, just marked down)", n)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOutlierEjection(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{Consecutive: 3, BaseEjection: time.Second, MaxEjection: 3 * time.Second})
	for _, id := range []string{"a", "b", "c", "d"} {
		beat(m, t0, hb(id, 1, wire.StateUp))
	}
	a, b, c := m.members["a"], m.members["b"], m.members["c"]

	// Two failures and a success: the run is broken, no ejection.
	m.Failure(t0, a, "timeouts")
	m.Failure(t0, a, "timeouts")
	m.Success(a)
	if cs := m.Failure(t0, a, "timeouts"); len(cs) != 0 {
		t.Fatalf("ejected after a broken run: %v", cs)
	}
	m.Failure(t0, a, "timeouts")
	cs := m.Failure(t0, a, "timeouts")
	if len(cs) != 1 || cs[0].To != wire.StateEjected || !cs[0].Until.Equal(t0.Add(time.Second)) {
		t.Fatalf("third failure in a row: changes = %+v; want ejection until t0+1s", cs)
	}
	// Heartbeats do not end an ejection.
	beat(m, t0.Add(500*time.Millisecond), hb("a", 2, wire.StateUp))
	if states(m)["a"] != wire.StateEjected {
		t.Fatalf("heartbeat ended the ejection")
	}
	// b may be ejected too (2 of 4), c may not (3 of 4 > half).
	for range 3 {
		m.Failure(t0, b, "timeouts")
	}
	for range 3 {
		if cs := m.Failure(t0, c, "timeouts"); len(cs) != 0 {
			t.Fatalf("ejected more than half the workers: %v", cs)
		}
	}
	if got := states(m); got["b"] != wire.StateEjected || got["c"] != wire.StateUp {
		t.Fatalf("states = %v; want b ejected, c up", got)
	}
	// The ejection ends on time, and a second one lasts twice as long.
	cs = m.Expire(t0.Add(time.Second))
	if len(cs) != 2 {
		t.Fatalf("Expire at the end of ejections: %v; want a and b back up", cs)
	}
	for range 3 {
		cs = m.Failure(t0.Add(time.Second), a, "timeouts")
	}
	if len(cs) != 1 || !cs[0].Until.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("second ejection: %+v; want until t0+1s+2s", cs)
	}
}

func TestOutlierDisabled(t *testing.T) {
	m := newMembership(time.Second, OutlierConfig{Consecutive: -1})
	beat(m, t0, hb("a", 1, wire.StateUp))
	beat(m, t0, hb("b", 1, wire.StateUp))
	for range 100 {
		if cs := m.Failure(t0, m.members["a"], "timeouts"); len(cs) != 0 {
			t.Fatalf("ejected with outlier detection off: %v", cs)
		}
	}
	if got := m.members["a"].errors.Load(); got != 100 {
		t.Fatalf("errors = %d; want 100", got)
	}
}

func TestSuspects(t *testing.T) {
	m := newMembership(time.Second, OutlierConfig{})
	beat(m, t0, hb("a", 1, wire.StateUp))
	beat(m, t0, hb("b", 1, wire.StateUp))
	beat(m, t0, hb("c", 1, wire.StateDraining))
	m.Expire(t0.Add(2 * time.Second))
	ids := func(ws []*member) (out []string) {
		for _, w := range ws {
			out = append(out, w.id)
		}
		return out
	}
	// Silent ones are suspects; a drained one left on purpose.
	if got := ids(m.Suspects()); !equal(got, []string{"a", "b"}) {
		t.Fatalf("suspects = %v; want [a b]", got)
	}
	// A "no responders" proves a suspect gone.
	m.MarkDown(m.members["a"], "no responders")
	if got := ids(m.Suspects()); !equal(got, []string{"b"}) {
		t.Fatalf("suspects after no responders = %v; want [b]", got)
	}
	// A heartbeat brings a suspect back to life.
	beat(m, t0.Add(3*time.Second), hb("b", 2, wire.StateUp))
	if got := ids(m.Suspects()); len(got) != 0 || !equal(liveIDs(m), []string{"b"}) {
		t.Fatalf("suspects = %v, live = %v; want none and [b]", got, liveIDs(m))
	}
}
