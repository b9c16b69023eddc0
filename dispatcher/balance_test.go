package dispatcher

import (
	"testing"
)

func members(ids ...string) []*member {
	out := make([]*member, len(ids))
	for i, id := range ids {
		out[i] = &member{id: id}
	}
	return out
}

func TestRoundRobin(t *testing.T) {
	live := members("a", "b", "c")
	skipB := func(w *member) bool { return w.id == "b" }
	skipAll := func(*member) bool { return true }
	tests := []struct {
		name string
		live []*member
		skip func(*member) bool
		n    int
		want string
	}{
		{"cycles in order", live, nil, 7, "abcabca"},
		{"skips a tried worker", live, skipB, 6, "accacc"},
		{"none left", live, skipAll, 2, "--"},
		{"empty set", nil, nil, 2, "--"},
		{"one worker", members("x"), nil, 3, "xxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr, err := newPicker(RoundRobin, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for range tt.n {
				if i := rr.Pick(tt.live, tt.skip, 1); i < 0 {
					got += "-"
				} else {
					got += tt.live[i].id
				}
			}
			if got != tt.want {
				t.Fatalf("picks = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestLeastInflight(t *testing.T) {
	live := members("a", "b", "c")
	live[0].inflight.Store(10)
	live[1].inflight.Store(10)
	counts := map[string]int{}
	p, err := newPicker(LeastInflight, nil)
	if err != nil {
		t.Fatal(err)
	}
	pick := func(skip func(*member) bool) *member {
		if i := p.Pick(live, skip, 1); i >= 0 {
			return live[i]
		}
		return nil
	}
	for range 3000 {
		counts[pick(nil).id]++
	}
	// c is the least busy: it wins every draw it is in (2 of 3 pairs).
	if counts["c"] < 1800 || counts["c"] > 2200 {
		t.Fatalf("least busy worker picked %d of 3000; want about 2000 (%v)", counts["c"], counts)
	}
	skipC := func(w *member) bool { return w.id == "c" }
	for range 100 {
		if w := pick(skipC); w == nil || w.id == "c" {
			t.Fatalf("pick with c tried = %v; want a or b", w)
		}
	}
	if w := pick(func(*member) bool { return true }); w != nil {
		t.Fatalf("pick with all tried = %s; want none", w.id)
	}
	if i := p.Pick(nil, nil, 1); i >= 0 {
		t.Fatalf("pick from empty set = %d; want none", i)
	}
}

func TestNewPicker(t *testing.T) {
	for _, s := range []string{"", RoundRobin, PeakEWMA, LeastInflight} {
		if _, err := newPicker(s, nil); err != nil {
			t.Errorf("newPicker(%q) = %v; want ok", s, err)
		}
	}
	if _, err := newPicker("random", nil); err == nil {
		t.Errorf("newPicker(random) = nil error; want an error")
	}
}
