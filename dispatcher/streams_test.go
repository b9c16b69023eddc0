package dispatcher

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// TestForgedHeartbeatsDoNotLockOut: heartbeats anyone could forge, and
// what the table makes of them. The dead-after is 3 s, so the reorder
// window is 1 s.
func TestForgedHeartbeatsDoNotLockOut(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	other := func(h wire.Heartbeat, started time.Duration) wire.Heartbeat {
		h.StartedAt = t0.Add(started)
		return h
	}
	type step struct {
		name   string
		at     time.Duration
		hb     wire.Heartbeat
		state  string // w's state after it
		notice notice
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a forged draining with seq 2^64-1 and the real started_at", []step{
			{"the worker", 0, hb("w", 10, wire.StateUp), wire.StateUp, noticeNone},
			{"forged", 100 * time.Millisecond, hb("w", math.MaxUint64, wire.StateDraining), wire.StateDraining, noticeNone},
			{"its next heartbeat, within the window", 900 * time.Millisecond, hb("w", 11, wire.StateUp), wire.StateDraining, noticeStale},
			{"the one after, past it", 1900 * time.Millisecond, hb("w", 12, wire.StateUp), wire.StateUp, noticeContradiction},
			{"and on", 2900 * time.Millisecond, hb("w", 13, wire.StateUp), wire.StateUp, noticeNone},
		}},
		{"a forged draining from another process", []step{
			{"the worker", 0, hb("w", 10, wire.StateUp), wire.StateUp, noticeNone},
			{"forged", 100 * time.Millisecond, other(hb("w", 1, wire.StateDraining), time.Hour), wire.StateUp, noticeNone},
			{"its next heartbeat", 900 * time.Millisecond, hb("w", 11, wire.StateUp), wire.StateUp, noticeConflict},
		}},
		{"a restart is no conflict", []step{
			{"the old process", 0, hb("w", 10, wire.StateUp), wire.StateUp, noticeNone},
			{"its goodbye", 100 * time.Millisecond, hb("w", 11, wire.StateDraining), wire.StateDraining, noticeNone},
			{"the new one", 200 * time.Millisecond, other(hb("w", 1, wire.StateUp), time.Second), wire.StateUp, noticeNone},
			{"on", 1200 * time.Millisecond, other(hb("w", 2, wire.StateUp), time.Second), wire.StateUp, noticeNone},
		}},
		{"two processes with one id, interleaved", []step{
			{"a", 0, hb("w", 10, wire.StateUp), wire.StateUp, noticeNone},
			{"b", 10 * time.Millisecond, other(hb("w", 3, wire.StateUp), time.Second), wire.StateUp, noticeNone},
			{"a again", 20 * time.Millisecond, hb("w", 11, wire.StateUp), wire.StateUp, noticeConflict},
			{"b again", 30 * time.Millisecond, other(hb("w", 4, wire.StateUp), time.Second), wire.StateUp, noticeConflict},
			{"a drains while b is up", 40 * time.Millisecond, hb("w", 12, wire.StateDraining), wire.StateUp, noticeConflict},
		}},
		{"reordered heartbeats of one process", []step{
			{"6", 0, hb("w", 6, wire.StateUp), wire.StateUp, noticeNone},
			{"draining 7", 10 * time.Millisecond, hb("w", 7, wire.StateDraining), wire.StateDraining, noticeNone},
			{"5, overtaken", 20 * time.Millisecond, hb("w", 5, wire.StateUp), wire.StateDraining, noticeStale},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMembership(3*time.Second, OutlierConfig{})
			for _, s := range tc.steps {
				_, n := m.Heartbeat(at(s.at), s.hb)
				if got := states(m)["w"]; got != s.state || n != s.notice {
					t.Fatalf("%s: state %q, notice %d; want %q, %d", s.name, got, n, s.state, s.notice)
				}
			}
		})
	}
}

func TestTableCap(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{})
	m.maxWorkers = 2
	beat(m, t0, hb("a", 1, wire.StateUp))
	beat(m, t0, hb("b", 1, wire.StateUp))
	if cs, n := m.Heartbeat(t0, hb("c", 1, wire.StateUp)); len(cs) != 0 || n != noticeTableFull {
		t.Fatalf("third worker at a cap of 2: %v, notice %d; want refused, noticeTableFull", cs, n)
	}
	// Known workers still heartbeat.
	if _, n := m.Heartbeat(t0.Add(time.Second), hb("a", 2, wire.StateUp)); n != noticeNone {
		t.Fatalf("known worker at the cap: notice %d", n)
	}
	// A down worker makes room.
	m.MarkDown(m.members["b"], "no responders")
	if cs, n := m.Heartbeat(t0, hb("c", 1, wire.StateUp)); len(cs) != 1 || n != noticeNone {
		t.Fatalf("new worker with b down: %v, notice %d; want c up", cs, n)
	}
	if got := states(m); len(got) != 2 || got["a"] != wire.StateUp || got["c"] != wire.StateUp {
		t.Fatalf("table = %v; want a and c up, b evicted", got)
	}
	if m.down != 0 {
		t.Fatalf("down count = %d; want 0", m.down)
	}
}

// TestSnapshotsMatchRebuild: after any sequence of heartbeats, drains,
// downs, ejections, expiries and evictions, the snapshots updated one
// member at a time are those a rebuild from the table gives.
func TestSnapshotsMatchRebuild(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m := newMembership(time.Second, OutlierConfig{Consecutive: 2, BaseEjection: 100 * time.Millisecond})
	m.maxWorkers = 12
	ids := make([]string, 16)
	for i := range ids {
		ids[i] = fmt.Sprintf("w-%02d", i)
	}
	now := t0
	for step := range 5000 {
		now = now.Add(time.Duration(r.IntN(100)) * time.Millisecond)
		id := ids[r.IntN(len(ids))]
		switch op := r.IntN(10); {
		case op < 5:
			state := wire.StateUp
			if r.IntN(8) == 0 {
				state = wire.StateDraining
			}
			beat(m, now, wire.Heartbeat{ID: id, State: state, Seq: uint64(step), StartedAt: t0.Add(time.Duration(r.IntN(2)) * time.Hour)})
		case op < 6:
			if w := m.Get(id); w != nil {
				m.MarkDown(w, "no responders")
			}
		case op < 8:
			if w := m.Get(id); w != nil {
				m.Failure(now, w, "timeouts")
			}
		default:
			m.Expire(now)
		}
		got := [2][]string{idsOf(m.Live()), idsOf(m.Suspects())}
		m.mu.Lock()
		m.rebuildLocked()
		m.mu.Unlock()
		want := [2][]string{idsOf(m.Live()), idsOf(m.Suspects())}
		if !equal(got[0], want[0]) || !equal(got[1], want[1]) {
			t.Fatalf("step %d: live %v, suspects %v; a rebuild gives %v, %v", step, got[0], got[1], want[0], want[1])
		}
		down := 0
		for _, s := range m.Snapshot() {
			if s.State == wire.StateDown {
				down++
			}
		}
		if down != m.down {
			t.Fatalf("step %d: down count %d; the table has %d", step, m.down, down)
		}
	}
}

func idsOf(ws []*member) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.id)
	}
	return out
}
