package dispatcher

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// TestDrainTable: a drained worker leaves the live and suspect snapshots
// whatever its heartbeats say, keeps its state, outlives being forgotten,
// and comes back only on resume.
func TestDrainTable(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{})
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	beat(m, at(0), hb("a", 1, wire.StateUp))
	beat(m, at(0), hb("b", 1, wire.StateUp))

	steps := []struct {
		name     string
		do       func() (drainResult, error)
		want     drainResult
		live     []string
		suspects []string
	}{
		{"drain a known worker", func() (drainResult, error) { return m.setDrained("a", true) },
			drainResult{known: true, changed: true, state: wire.StateUp}, []string{"b"}, nil},
		{"its heartbeats do not bring it back", func() (drainResult, error) {
			beat(m, at(time.Second), hb("a", 2, wire.StateUp))
			return drainResult{}, nil
		}, drainResult{}, []string{"b"}, nil},
		{"draining twice changes nothing", func() (drainResult, error) { return m.setDrained("a", true) },
			drainResult{known: true, state: wire.StateUp}, []string{"b"}, nil},
		{"silent, it is no suspect either", func() (drainResult, error) {
			beat(m, at(4*time.Second), hb("b", 2, wire.StateUp))
			m.Expire(at(4*time.Second + time.Millisecond))
			return drainResult{}, nil
		}, drainResult{}, []string{"b"}, nil},
		{"an unknown worker is drained before it appears", func() (drainResult, error) { return m.setDrained("c", true) },
			drainResult{changed: true}, []string{"b"}, nil},
		{"and stays out when it does", func() (drainResult, error) {
			beat(m, at(5*time.Second), hb("c", 1, wire.StateUp))
			return drainResult{}, nil
		}, drainResult{}, []string{"b"}, nil},
		{"a forgotten worker's drain remains", func() (drainResult, error) {
			m.Expire(at(70 * time.Second)) // every one forgotten: down for long
			m.Expire(at(200 * time.Second))
			beat(m, at(201*time.Second), hb("a", 1, wire.StateUp))
			return drainResult{}, nil
		}, drainResult{}, nil, nil},
		{"resume puts it back", func() (drainResult, error) { return m.setDrained("a", false) },
			drainResult{known: true, changed: true, state: wire.StateUp}, []string{"a"}, nil},
		{"resuming twice changes nothing", func() (drainResult, error) { return m.setDrained("a", false) },
			drainResult{known: true, state: wire.StateUp}, []string{"a"}, nil},
		{"a resumed silent worker is a suspect again", func() (drainResult, error) {
			beat(m, at(202*time.Second), hb("c", 2, wire.StateUp))
			m.Expire(at(206 * time.Second))
			return m.setDrained("c", false)
		}, drainResult{known: true, changed: true, state: wire.StateDown}, nil, []string{"a", "c"}},
	}
	for _, s := range steps {
		got, err := s.do()
		if err != nil || got != s.want {
			t.Fatalf("%s: got %+v, %v; want %+v", s.name, got, err, s.want)
		}
		var live, suspects []string
		for _, w := range m.Live() {
			live = append(live, w.id)
		}
		for _, w := range m.Suspects() {
			suspects = append(suspects, w.id)
		}
		if !slices.Equal(live, s.live) || !slices.Equal(suspects, s.suspects) {
			t.Fatalf("%s: live %v, suspects %v; want %v, %v", s.name, live, suspects, s.live, s.suspects)
		}
	}
	if got := m.Drained(); len(got) != 0 {
		t.Fatalf("Drained() = %v; want none", got)
	}
}

// TestDrainRefuses: a bad id, and a new drain past the cap, change nothing.
func TestDrainRefuses(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{})
	m.maxWorkers = 2
	for _, id := range []string{"", "a.b", "a*", strings.Repeat("x", 65)} {
		if _, err := m.setDrained(id, true); !errors.Is(err, ErrInvalidWorkerID) {
			t.Errorf("setDrained(%q) = %v; want ErrInvalidWorkerID", id, err)
		}
	}
	for _, id := range []string{"a", "b"} {
		if _, err := m.setDrained(id, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.setDrained("c", true); !errors.Is(err, ErrTooManyDrained) {
		t.Fatalf("a third drain: %v; want ErrTooManyDrained", err)
	}
	if _, err := m.setDrained("a", true); err != nil {
		t.Fatalf("draining a drained worker at the cap: %v", err)
	}
	if got := m.Drained(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Drained() = %v; want [a b]", got)
	}
}

// TestDrainedDoNotCountForEjection: outlier detection keeps half of the
// workers in rotation, and a drained worker is not in rotation: with 4
// workers of which 2 are drained, one of the 2 left may be ejected, not
// both.
func TestDrainedDoNotCountForEjection(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{Consecutive: 1, BaseEjection: time.Second, MaxEjection: time.Second})
	for _, id := range []string{"a", "b", "c", "d"} {
		beat(m, t0, hb(id, 1, wire.StateUp))
	}
	for _, id := range []string{"c", "d"} {
		if _, err := m.setDrained(id, true); err != nil {
			t.Fatal(err)
		}
	}
	if cs := m.Failure(t0, m.members["a"], "timeouts"); len(cs) != 1 {
		t.Fatalf("a's failure: %v; want its ejection (1 of 2 in rotation)", cs)
	}
	if cs := m.Failure(t0, m.members["b"], "timeouts"); len(cs) != 0 {
		t.Fatalf("b ejected too, with a ejected and c and d drained: %v", cs)
	}
}
