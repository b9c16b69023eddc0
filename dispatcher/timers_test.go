package dispatcher

import (
	"testing"
	"time"
)

func TestSleepUntil(t *testing.T) {
	tick := 5 * time.Millisecond
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		name      string
		next, now int64
		want      time.Duration
	}{
		{"well ahead", 100 * ms, 0, 100 * time.Millisecond},
		{"sooner than a tick", 2 * ms, 0, tick},
		{"overdue", 0, 10 * ms, tick},
		{"exactly a tick", 5 * ms, 0, tick},
	} {
		if got := sleepUntil(tc.next, tc.now, tick); got != tc.want {
			t.Errorf("%s: sleepUntil(%d, %d, %v) = %v; want %v", tc.name, tc.next, tc.now, tick, got, tc.want)
		}
	}
}

func TestSilenceIsNews(t *testing.T) {
	deadAfter := 3 * time.Second
	for _, tc := range []struct {
		name    string
		backlog int
		gap     time.Duration
		want    bool
	}{
		{"on time, nothing waiting", 0, 250 * time.Millisecond, true},
		{"heartbeats waiting", 3, 250 * time.Millisecond, false},
		{"late by half of DeadAfter", 0, 1500 * time.Millisecond, false},
		{"late, just under half", 0, 1499 * time.Millisecond, true},
	} {
		if got := silenceIsNews(tc.backlog, tc.gap, deadAfter); got != tc.want {
			t.Errorf("%s: silenceIsNews(%d, %v, %v) = %v; want %v", tc.name, tc.backlog, tc.gap, deadAfter, got, tc.want)
		}
	}
}
