package pick

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// tw is a worker for the tests: its pending count set by hand.
type tw struct {
	id      string
	pending int64
	st      Stats
}

func (w *tw) Pending() int64 { return w.pending }
func (w *tw) Stats() *Stats  { return &w.st }

func fleet(ids string, conc int) []*tw {
	out := make([]*tw, len(ids))
	for i, id := range ids {
		out[i] = &tw{id: string(id)}
		out[i].st.SetConcurrency(conc)
	}
	return out
}

func newPicker(t *testing.T, strategy string, cfg Config[*tw]) Picker[*tw] {
	t.Helper()
	if cfg.Rand == nil {
		cfg.Rand = rand.NewPCG(1, 2)
	}
	p, err := New(strategy, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const sec = int64(time.Second)

// observe gives w n replies of latency lat, failed or not, ending at now.
func observe(w *tw, now int64, n int, lat time.Duration, failed bool) {
	for i := range n {
		w.st.Observe(now-int64(n-i)*int64(time.Millisecond), lat, failed)
	}
}

// shares picks n times at now and counts the picks per worker.
func shares(p Picker[*tw], ws []*tw, now int64, n int) map[string]int {
	p.Refresh(ws, now)
	got := map[string]int{}
	for range n {
		i := p.Pick(ws, nil, now)
		if i < 0 {
			got["-"]++
			continue
		}
		got[ws[i].id]++
	}
	return got
}

func TestRoundRobinOrder(t *testing.T) {
	skipB := func(w *tw) bool { return w.id == "b" }
	skipAll := func(*tw) bool { return true }
	tests := []struct {
		name string
		ws   []*tw
		skip func(*tw) bool
		n    int
		want string
	}{
		{"cycles in order", fleet("abc", 16), nil, 7, "abcabca"},
		{"no concurrency announced", fleet("abc", 0), nil, 6, "abcabc"},
		{"skips a tried worker", fleet("abc", 16), skipB, 6, "accacc"},
		{"none left", fleet("abc", 16), skipAll, 2, "--"},
		{"empty set", nil, nil, 2, "--"},
		{"one worker", fleet("x", 16), nil, 3, "xxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(t, RoundRobin, Config[*tw]{})
			now := 10 * sec
			for _, w := range tt.ws {
				observe(w, now, 20, 2*time.Millisecond, false)
			}
			p.Refresh(tt.ws, now)
			got := ""
			for range tt.n {
				if i := p.Pick(tt.ws, tt.skip, now); i < 0 {
					got += "-"
				} else {
					got += tt.ws[i].id
				}
			}
			if got != tt.want {
				t.Fatalf("picks = %q; want %q", got, tt.want)
			}
		})
	}
}

// Equal workers keep the exact order under load too, while each has a
// free slot; with none free, the less loaded of two draws wins.
func TestRoundRobinSlots(t *testing.T) {
	p := newPicker(t, RoundRobin, Config[*tw]{})
	ws := fleet("abc", 4)
	now := 10 * sec
	for _, w := range ws {
		observe(w, now, 20, 2*time.Millisecond, false)
	}
	ws[0].pending, ws[1].pending, ws[2].pending = 3, 3, 3
	p.Refresh(ws, now)
	got := ""
	for range 6 {
		got += ws[p.Pick(ws, nil, now)].id
	}
	if got != "abcabc" {
		t.Fatalf("picks with free slots = %q; want abcabc", got)
	}
	ws[1].pending = 4 // b full: its turns pass to c
	got = ""
	for range 6 {
		got += ws[p.Pick(ws, nil, now)].id
	}
	if got != "acacac" {
		t.Fatalf("picks with b full = %q; want acacac: b passed over, its turns spent", got)
	}
	ws[0].pending, ws[1].pending, ws[2].pending = 9, 5, 7 // all full
	got = ""
	for range 300 {
		got += ws[p.Pick(ws, nil, now)].id
	}
	// The less loaded of two draws: a loses every draw it is in.
	if a, b := strings.Count(got, "a"), strings.Count(got, "b"); a != 0 || b < 150 {
		t.Fatalf("picks with every slot taken: a %d, b %d of 300; want a never, b in every draw it is in", a, b)
	}
}

func TestRoundRobinPassesOver(t *testing.T) {
	now := 100 * sec
	tests := []struct {
		name    string
		setup   func(ws []*tw)
		verdict Verdict
		max     int // picks of c out of 3000
	}{
		{"slow", func(ws []*tw) { observe(ws[2], now, 50, 100*time.Millisecond, false) }, Slow, 50},
		{"failing fast", func(ws []*tw) { observe(ws[2], now, 50, 100*time.Microsecond, true) }, Failing, 30},
		{"half failing", func(ws []*tw) {
			for i := range 50 {
				ws[2].st.Observe(now-int64(50-i)*int64(time.Millisecond), time.Millisecond, i%2 == 0)
			}
		}, Failing, 300},
		{"unequal but not an outlier", func(ws []*tw) { observe(ws[2], now, 50, 4*time.Millisecond, false) }, OK, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(t, RoundRobin, Config[*tw]{})
			ws := fleet("abc", 16)
			observe(ws[0], now, 50, 2*time.Millisecond, false)
			observe(ws[1], now, 50, 2*time.Millisecond, false)
			tt.setup(ws)
			got := shares(p, ws, now, 3000)
			if v := ws[2].st.Figures(now).Verdict; v != tt.verdict {
				t.Errorf("verdict of c = %v; want %v", v, tt.verdict)
			}
			if got["c"] > tt.max {
				t.Errorf("c picked %d of 3000; want at most %d (%v)", got["c"], tt.max, got)
			}
			if d := got["a"] - got["b"]; d < -got["a"]/10 || d > got["a"]/10 {
				t.Errorf("a and b picked %d and %d; want what c leaves shared evenly", got["a"], got["b"])
			}
		})
	}
}

// A slow worker's slots shrink with its weight: while the others are
// full, its probes do not pile up on it.
func TestRoundRobinSlowSlots(t *testing.T) {
	p := newPicker(t, RoundRobin, Config[*tw]{})
	ws := fleet("abc", 16)
	now := 100 * sec
	observe(ws[0], now, 50, 2*time.Millisecond, false)
	observe(ws[1], now, 50, 2*time.Millisecond, false)
	observe(ws[2], now, 50, 100*time.Millisecond, false)
	ws[0].pending, ws[1].pending, ws[2].pending = 20, 20, 1
	got := shares(p, ws, now, 3000)
	if got["c"] != 0 {
		t.Fatalf("slow c holding one picked %d of 3000 while a and b are full; want 0 (%v)", got["c"], got)
	}
	ws[2].pending = 0
	if got := shares(p, ws, now, 3000); got["c"] == 0 || got["c"] > 100 {
		t.Fatalf("idle slow c picked %d of 3000; want a probe now and then (%v)", got["c"], got)
	}
}

// A worker back in rotation starts at a tenth of its share and ramps to
// all of it over the slow start, never above it.
func TestSlowStart(t *testing.T) {
	p := newPicker(t, RoundRobin, Config[*tw]{SlowStart: 10 * time.Second})
	ws := fleet("abc", 16)
	back := 100 * sec
	for _, w := range ws {
		observe(w, back, 20, 2*time.Millisecond, false)
	}
	ws[2].st.Back(back)
	prev := 0
	for _, tt := range []struct {
		after    time.Duration
		min, max int // picks of c out of 3000
	}{
		{0, 50, 150},
		{5 * time.Second, 400, 600},
		{10 * time.Second, 1000, 1000},
		{20 * time.Second, 1000, 1000},
	} {
		now := back + int64(tt.after)
		got := shares(p, ws, now, 3000)
		if got["c"] < tt.min || got["c"] > tt.max || got["c"] < prev {
			t.Fatalf("%v after coming back: c picked %d of 3000; want %d..%d, no less than before (%d)", tt.after, got["c"], tt.min, tt.max, prev)
		}
		prev = got["c"]
		if v := ws[2].st.Figures(now).Verdict; (tt.after < 10*time.Second) != (v == Warming) {
			t.Fatalf("%v after coming back: verdict %v", tt.after, v)
		}
	}
}

func TestPeakEWMA(t *testing.T) {
	now := 100 * sec
	tests := []struct {
		name  string
		setup func(ws []*tw)
		max   int // picks of c out of 3000
	}{
		{"slow", func(ws []*tw) { observe(ws[2], now, 50, 100*time.Millisecond, false) }, 1000 / 10},
		{"failing fast", func(ws []*tw) { observe(ws[2], now, 50, 100*time.Microsecond, true) }, 1000 / 10},
		{"busy", func(ws []*tw) { ws[2].pending = 30 }, 1000 / 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicker(t, PeakEWMA, Config[*tw]{})
			ws := fleet("abc", 16)
			for _, w := range ws {
				observe(w, now, 50, 2*time.Millisecond, false)
			}
			tt.setup(ws)
			got := shares(p, ws, now, 3000)
			if got["c"] > tt.max {
				t.Fatalf("c picked %d of 3000; want at most %d (%v)", got["c"], tt.max, got)
			}
		})
	}
	// Equal workers share evenly.
	p := newPicker(t, PeakEWMA, Config[*tw]{})
	ws := fleet("abc", 16)
	for _, w := range ws {
		observe(w, now, 50, 2*time.Millisecond, false)
	}
	for id, n := range shares(p, ws, now, 3000) {
		if n < 800 || n > 1200 {
			t.Fatalf("%s picked %d of 3000 among equals; want about 1000", id, n)
		}
	}
}

func TestLeastInflight(t *testing.T) {
	p := newPicker(t, LeastInflight, Config[*tw]{})
	ws := fleet("abc", 16)
	ws[0].pending, ws[1].pending = 10, 10
	got := shares(p, ws, sec, 3000)
	// c is the least busy: it wins every draw it is in (2 of 3 pairs).
	if got["c"] < 1800 || got["c"] > 2200 {
		t.Fatalf("least busy worker picked %d of 3000; want about 2000 (%v)", got["c"], got)
	}
}

// The draws of every strategy skip what skip says, and say none.
func TestSkip(t *testing.T) {
	for _, s := range Strategies {
		t.Run(s, func(t *testing.T) {
			p := newPicker(t, s, Config[*tw]{})
			ws := fleet("abc", 16)
			skipC := func(w *tw) bool { return w.id == "c" }
			for range 100 {
				if i := p.Pick(ws, skipC, sec); i < 0 || ws[i].id == "c" {
					t.Fatalf("pick with c tried = %d; want a or b", i)
				}
			}
			if i := p.Pick(ws, func(*tw) bool { return true }, sec); i >= 0 {
				t.Fatalf("pick with all tried = %s; want none", ws[i].id)
			}
			if i := p.Pick(nil, nil, sec); i >= 0 {
				t.Fatalf("pick from none = %d; want -1", i)
			}
			if i := p.Pick(ws[:1], nil, sec); i != 0 {
				t.Fatalf("pick from one = %d; want 0", i)
			}
		})
	}
}

// A verdict is told once when it changes, at most once per TellEvery.
func TestOnVerdict(t *testing.T) {
	type told struct {
		id       string
		from, to Verdict
		why      string
	}
	var got []told
	p := newPicker(t, RoundRobin, Config[*tw]{OnVerdict: func(w *tw, from, to Verdict, why string) {
		got = append(got, told{w.id, from, to, why})
	}})
	ws := fleet("abc", 16)
	now := 100 * sec
	for _, w := range ws {
		observe(w, now, 20, 2*time.Millisecond, false)
	}
	p.Refresh(ws, now)
	if len(got) != 0 {
		t.Fatalf("told %v of a healthy fleet; want nothing", got)
	}
	observe(ws[2], now+sec/10, 50, 300*time.Millisecond, false)
	for i := range 50 { // refreshes within TellEvery
		p.Refresh(ws, now+sec/10+int64(i)*int64(RefreshEvery))
	}
	if len(got) != 1 || got[0].id != "c" || got[0].from != OK || got[0].to != Slow || !strings.Contains(got[0].why, "latency") {
		t.Fatalf("told %+v; want c ok → slow once, with its latency", got)
	}
	observe(ws[2], now+sec/5, 200, time.Millisecond, false) // quick again at once
	p.Refresh(ws, now+sec/5)
	if len(got) != 1 {
		t.Fatalf("told %+v within TellEvery; want nothing more", got)
	}
	p.Refresh(ws, now+2*sec)
	if len(got) != 2 || got[1].to != OK {
		t.Fatalf("told %+v; want c back to ok after TellEvery", got)
	}
}

func TestObserve(t *testing.T) {
	var s Stats
	now := 10 * sec
	s.Observe(now, 10*time.Millisecond, false)
	f := s.Figures(now)
	if f.Latency != 10*time.Millisecond || f.Peak != 10*time.Millisecond || f.ErrorRate != 0 || f.Weight != 1 {
		t.Fatalf("after one reply: %+v; want latency and peak 10ms, no errors, full weight", f)
	}
	s.Observe(now+sec, 50*time.Millisecond, false) // a second later: mostly the new one
	if f := s.Figures(now + sec); f.Latency < 30*time.Millisecond || f.Peak != 50*time.Millisecond {
		t.Fatalf("after a slower reply: %+v; want latency above 30ms, peak 50ms", f)
	}
	s.Observe(now+sec+1, time.Millisecond, true) // a fast failure
	f = s.Figures(now + sec + 1)
	if f.Peak < FailureCost || f.ErrorRate < minAlpha || f.Latency > 50*time.Millisecond {
		t.Fatalf("after a failure: %+v; want peak ≥ %v, an error rate, latency unchanged", f, FailureCost)
	}
	if later := s.Figures(now + 30*sec); later.Peak >= f.Peak/10 {
		t.Fatalf("peak 29s later = %v; want it decayed below a tenth of %v", later.Peak, f.Peak)
	}
}

func TestNew(t *testing.T) {
	for _, s := range append([]string{""}, Strategies...) {
		p, err := New(s, Config[*tw]{})
		if err != nil {
			t.Fatalf("New(%q) = %v; want ok", s, err)
		}
		if s != "" && p.Name() != s {
			t.Fatalf("New(%q).Name() = %q", s, p.Name())
		}
	}
	if _, err := New("random", Config[*tw]{}); !errors.Is(err, ErrStrategy) {
		t.Fatalf("New(random) = %v; want ErrStrategy", err)
	}
}
