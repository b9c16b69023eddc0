package flight

import (
	"testing"
	"time"
)

func TestSilenceOf(t *testing.T) {
	base := 400 * time.Millisecond
	for _, tc := range []struct {
		gap  int64
		want time.Duration
	}{
		{0, base},                            // no ticks learnt
		{int64(50 * time.Millisecond), base}, // faster than announced: base
		{int64(150 * time.Millisecond), 600 * time.Millisecond},
		{int64(time.Second), 3 * base}, // capped
	} {
		if got := silenceOf(base, tc.gap); got != tc.want {
			t.Errorf("silenceOf(%v, %v) = %v; want %v", base, time.Duration(tc.gap), got, tc.want)
		}
	}
}

func TestNextGap(t *testing.T) {
	every := 100 * time.Millisecond
	for _, tc := range []struct {
		name          string
		prev, ns, avg int64
		wantAvg       int64
		wantTick      bool
	}{
		{"first tick", 0, 1000 * ms, 0, 0, true},
		{"same tick on another subject", 1000 * ms, 1020 * ms, 0, 0, false},
		{"on time", 1000 * ms, 1100 * ms, 0, 100 * ms, true},
		{"late", 1000 * ms, 1180 * ms, 100 * ms, 110 * ms, true},
		{"after a pause", 1000 * ms, 4000 * ms, 100 * ms, 100 * ms, true},
	} {
		avg, tick := nextGap(tc.prev, tc.ns, tc.avg, every)
		if avg != tc.wantAvg || tick != tc.wantTick {
			t.Errorf("%s: nextGap = %v, %v; want %v, %v", tc.name, avg, tick, tc.wantAvg, tc.wantTick)
		}
	}
}

func TestWatchAt(t *testing.T) {
	s := time.Second
	for _, tc := range []struct {
		name                  string
		sent, heard           int64
		silence, hedge, atime time.Duration
		hedged                bool
		want                  int64
	}{
		{"no progress: the attempt timeout", 0, 0, 0, 0, s, false, int64(s)},
		{"progress: the silence from heard", 0, 300 * ms, 400 * time.Millisecond, 0, s, false, 700 * ms},
		{"hedge first", 0, 300 * ms, 400 * time.Millisecond, 250 * time.Millisecond, s, false, 250 * ms},
		{"hedged already", 0, 300 * ms, 400 * time.Millisecond, 250 * time.Millisecond, s, true, 700 * ms},
	} {
		if got := watchAt(tc.sent, tc.heard, tc.silence, tc.hedge, tc.atime, tc.hedged); got != tc.want {
			t.Errorf("%s: watchAt = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestHedgeDue(t *testing.T) {
	h := 250 * time.Millisecond
	for _, tc := range []struct {
		now    int64
		hedge  time.Duration
		hedged bool
		want   bool
	}{
		{249 * ms, h, false, false},
		{250 * ms, h, false, true},
		{900 * ms, h, true, false},
		{900 * ms, 0, false, false},
	} {
		if got := hedgeDue(tc.now, 0, tc.hedge, tc.hedged); got != tc.want {
			t.Errorf("hedgeDue(%v, %v, %v) = %v; want %v", tc.now, tc.hedge, tc.hedged, got, tc.want)
		}
	}
}

func TestRetryAfterTimeout(t *testing.T) {
	b := Budget{Ratio: 0.2, Min: 1}
	for _, tc := range []struct {
		name                string
		timeouts, max       int
		retrying            bool
		inflight, nRetrying int
		want                Verdict
	}{
		{"last attempt", 3, 3, false, 10, 0, NoRetry},
		{"first retry", 1, 3, false, 10, 0, RetryFirst},
		{"counted already", 2, 3, true, 10, 5, RetryAgain},
		{"budget spent", 1, 3, false, 10, 2, RetryDenied},
		{"the minimum", 1, 3, false, 0, 0, RetryFirst},
	} {
		if got := retryAfterTimeout(tc.timeouts, tc.max, tc.retrying, b, tc.inflight, tc.nRetrying); got != tc.want {
			t.Errorf("%s: %v; want %v", tc.name, got, tc.want)
		}
	}
	if (Budget{}).Allows(100, 0) {
		t.Error("the zero budget allows a retry")
	}
}

func TestHoldLength(t *testing.T) {
	for _, tc := range []struct {
		cause   DownCause
		holdFor time.Duration
		want    time.Duration
	}{
		{DownSilent, 6 * time.Second, 6 * time.Second},
		{DownNoResponders, 6 * time.Second, GoneGrace},
		{DownNoResponders, 100 * time.Millisecond, 100 * time.Millisecond},
		{DownLeft, 6 * time.Second, 0},
		{DownSilent, 0, 0},
	} {
		if got := holdLength(tc.cause, tc.holdFor); got != tc.want {
			t.Errorf("holdLength(%v, %v) = %v; want %v", tc.cause, tc.holdFor, got, tc.want)
		}
	}
}

func TestQuietAndMute(t *testing.T) {
	w := &Worker{ID: "w", progress: 100 * time.Millisecond}
	if quiet(w, int64(time.Hour)) {
		t.Error("a worker holding nothing is quiet")
	}
	w.inflight = 1
	w.hear(0)
	if quiet(w, 200*ms) || !quiet(w, 201*ms) {
		t.Error("quiet is not past half the silence")
	}
	w.muteUntil = 500 * ms
	if !w.mutedAt(499*ms) || w.mutedAt(500*ms) {
		t.Error("muted is not until muteUntil")
	}
	w.hear(300 * ms)
	if w.mutedAt(301 * ms) {
		t.Error("heard, still mute")
	}
}

// A client's hedge is raised to the floor, never lowered to it; with no
// floor it stands.
func TestClientHedge(t *testing.T) {
	for _, tc := range []struct{ h, floor, want time.Duration }{
		{time.Millisecond, 250 * time.Millisecond, 250 * time.Millisecond},
		{time.Second, 250 * time.Millisecond, time.Second},
		{time.Millisecond, 0, time.Millisecond},
	} {
		if got := clientHedge(tc.h, tc.floor); got != tc.want {
			t.Errorf("clientHedge(%v, %v) = %v; want %v", tc.h, tc.floor, got, tc.want)
		}
	}
	c := New(Config{HedgeAfter: time.Second, MinHedge: 250 * time.Millisecond}, &testPool{})
	for _, tc := range []struct{ asked, want time.Duration }{{0, time.Second}, {time.Millisecond, 250 * time.Millisecond}} {
		if got := c.hedgeOf(&Request{Hedge: tc.asked}); got != tc.want {
			t.Errorf("hedgeOf(Hedge %v) = %v; want %v", tc.asked, got, tc.want)
		}
	}
}
