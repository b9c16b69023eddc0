package loadcheck

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

// rec is a request sent at sent and done at done (milliseconds after t0), with
// a reply for id (none if id is ""), sent sends times and forwarded
// attempts times.
func rec(sent, done int, id string, sends, attempts int, err error) *Record {
	rc := &Record{Cmd: "add 1 2", Sent: at(sent), Done: at(done), Err: err}
	if id != "" {
		rc.Res = &client.Result{ID: id, Sends: sends, Attempts: attempts}
	}
	return rc
}

func TestMeasure(t *testing.T) {
	e503 := wire.NewError(wire.CodeUnavailable, "no worker available")
	wrong := rec(5100, 5120, "e", 1, 1, nil)
	wrong.Wrong = "add 1 2 = 4; want 3"
	recs := []*Record{
		rec(1000, 1010, "a", 1, 1, nil),                    // before the fault, untouched
		rec(2500, 5200, "b", 1, 2, nil),                    // in flight at the fault, retried: hurt
		rec(5000, 7000, "c", 2, 1, nil),                    // resent
		rec(5050, 5053, "d", 1, 1, e503),                   // a fast 503
		wrong,                                              // a wrong result
		rec(5200, 15000, "", 0, 0, errors.New("deadline")), // no reply
		rec(6000, 6020, "c", 1, 1, nil),                    // id c answered twice, one send answered twice on the wire
		rec(9000, 9500, "f", 1, 2, nil),                    // after the window: not during, not hurt
		{Cmd: "add 1 2"},                                   // never sent
	}
	wireN := map[string]int{"a": 1, "b": 1, "c": 2, "d": 1, "e": 1, "f": 1}
	s := Measure(recs, wireN, at(5000), 3*time.Second)

	got := []int{s.Sent, s.OK, s.Lost, s.Wrong, s.NoReply, s.E503, s.Distinct, s.DupIDs, s.OverSends, s.Resent, s.WireDup}
	want := []int{8, 5, 2, 1, 1, 1, 6, 1, 1, 1, 1}
	if !slices.Equal(got, want) {
		t.Errorf("sent, ok, lost, wrong, no reply, 503, distinct, dup ids, over sends, resent, wire dup = %v; want %v", got, want)
	}
	if s.ResentExtra != 2*time.Second {
		t.Errorf("ResentExtra = %v; want 2s, c's wait (an add: no work of its own)", s.ResentExtra)
	}
	// During the fault: c, d, e, the lost one and the second c.
	if s.P99 != 9800*time.Millisecond {
		t.Errorf("P99 = %v; want 9.8s, the request without a reply", s.P99)
	}
	if !s.LastHurt.Equal(at(15000)) {
		t.Errorf("LastHurt = %v; want the lost request's end, at 15s", s.LastHurt.Sub(t0))
	}
	if len(s.Wrongs) != 1 || len(s.Losts) != 2 || len(s.OverSent) != 1 || len(s.Failures) != 4 {
		t.Errorf("examples: wrongs %q, losts %q, over sent %q, failures %q", s.Wrongs, s.Losts, s.OverSent, s.Failures)
	}
	if want := "add 1 2: 503 no worker available (after 3ms)"; s.Failures[0] != want || s.OverSent[0] != "c: 2 replies to 1 sends" {
		t.Errorf("first failure %q, over sent %q; want %q first, in record order, and c's second answer", s.Failures[0], s.OverSent, want)
	}

	// Without a fault, P99 is of every request and nothing is hurt.
	s = Measure(recs[:1], wireN, time.Time{}, 3*time.Second)
	if s.P99 != 10*time.Millisecond || !s.LastHurt.IsZero() {
		t.Errorf("no fault: P99 %v, LastHurt %v; want 10ms and none", s.P99, s.LastHurt)
	}
}

func TestRecovery(t *testing.T) {
	rejoin := func(ms int, ok bool) func() (time.Time, bool) {
		return func() (time.Time, bool) {
			if !ok {
				return time.Time{}, false
			}
			return at(ms), true
		}
	}
	tests := []struct {
		name     string
		lastHurt time.Time
		rejoin   func() (time.Time, bool)
		want     time.Time
		ok       bool
	}{
		{"nothing hurt, no rejoin", time.Time{}, nil, time.Time{}, true},
		{"hurt, no rejoin", at(300), nil, at(300), true},
		{"rejoin after the last hurt", at(300), rejoin(500, true), at(500), true},
		{"rejoin before the last hurt", at(300), rejoin(200, true), at(300), true},
		{"no rejoin", at(300), rejoin(0, false), time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Score{LastHurt: tt.lastHurt}
			got, ok := s.Recovery(tt.rejoin)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("Recovery = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestFirstDone(t *testing.T) {
	recs := []*Record{rec(0, 900, "a", 2, 1, nil), rec(0, 1200, "b", 2, 1, nil), rec(0, 1100, "c", 1, 1, nil), rec(0, 1300, "d", 3, 1, nil)}
	if got, ok := FirstDone(recs, at(1000), (*Record).Resent); !ok || !got.Equal(at(1200)) {
		t.Errorf("FirstDone(resent, since 1s) = %v, %v; want 1.2s", got.Sub(t0), ok)
	}
	if _, ok := FirstDone(recs, at(1400), (*Record).Resent); ok {
		t.Errorf("FirstDone(resent, since 1.4s) found one; want none")
	}
}

func TestColumns(t *testing.T) {
	s := &Score{Sent: 3000, OK: 2303, Lost: 697, DupIDs: 1, OverSends: 2, P99: 21 * time.Millisecond}
	c := s.Columns("all-workers-down", s.DupIDs)
	c.Detect, c.Detected = 7*time.Millisecond, true
	want := "fault=all-workers-down sent=3000 ok=2303 lost=697 wrong=0 dup=1 p99=21ms detect=7ms recover=none"
	if got := c.Line(); got != want {
		t.Errorf("Line() = %q; want %q", got, want)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {50, 5}, {90, 9}, {99, 10}, {100, 10}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("Percentile(p%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 99); got != 0 {
		t.Errorf("Percentile of nothing = %v, want 0", got)
	}
}

// TestResentExtra: a resent sleep's own length is not counted as the wait
// its resend cost.
func TestResentExtra(t *testing.T) {
	sleep := rec(1000, 1550, "s", 2, 1, nil)
	sleep.Cmd = "sleep 300"
	if got := sleep.Work(); got != 300*time.Millisecond {
		t.Fatalf("Work of sleep 300 = %v", got)
	}
	recs := []*Record{sleep, rec(1000, 1200, "a", 2, 1, nil), rec(1000, 1900, "b", 1, 1, nil)}
	s := Measure(recs, map[string]int{"s": 2, "a": 2, "b": 1}, time.Time{}, 0)
	if s.ResentExtra != 250*time.Millisecond {
		t.Errorf("ResentExtra = %v; want 250ms: the sleep's 550ms less its 300ms (b, not resent, does not count)", s.ResentExtra)
	}
}

// TestHandedOver: a resent request answered through a dispatcher that
// tried no worker for it counts as answered by a reply handed over; one
// not resent, one with attempts, one failed do not.
func TestHandedOver(t *testing.T) {
	handed := rec(1000, 1300, "h", 2, 0, nil)
	handed.Res.Dispatcher = "d2"
	notResent := rec(1000, 1010, "n", 1, 0, nil)
	notResent.Res.Dispatcher = "d2"
	failed := rec(1000, 1300, "f", 2, 0, wire.NewError(wire.CodeUnavailable, "no worker available"))
	failed.Res.Dispatcher = "d2"
	recs := []*Record{handed, notResent, failed, rec(1000, 1500, "a", 2, 1, nil)}
	if s := Measure(recs, map[string]int{}, time.Time{}, 0); s.HandedOver != 1 {
		t.Errorf("HandedOver = %d; want 1 (h)", s.HandedOver)
	}
}
