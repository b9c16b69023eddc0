package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/natsutil"
)

func TestScheduleArmPopDisarm(t *testing.T) {
	var s schedule
	s.plan(100) // the sweep means to wake at 100
	tm := func(at int64) *timer { return &timer{at: at, idx: -1} }
	t50, t80, t100, t120 := tm(50), tm(80), tm(100), tm(120)
	for _, tc := range []struct {
		name string
		tm   *timer
		wake bool
		next int64 // nextWake after arming
	}{
		{"later than the planned wake", t120, false, 100},
		{"at the planned wake", t100, false, 100},
		{"sooner wakes the sweep", t80, true, 80},
		{"sooner still wakes it again", t50, true, 50},
	} {
		if wake := s.arm(tc.tm); wake != tc.wake || s.nextWake != tc.next {
			t.Errorf("%s: arm(%d) = %v, nextWake %d; want %v, %d", tc.name, tc.tm.at, wake, s.nextWake, tc.wake, tc.next)
		}
	}
	s.disarm(t80)
	s.disarm(t80) // twice: a no-op
	if t80.idx != -1 {
		t.Errorf("disarmed timer idx = %d; want -1", t80.idx)
	}
	for _, tc := range []struct {
		now  int64
		want []int64
	}{
		{49, nil},
		{100, []int64{50, 100}},
		{100, nil},
		{1000, []int64{120}},
	} {
		var got []int64
		for _, p := range s.popDue(tc.now, nil) {
			if p.idx != -1 {
				t.Errorf("popped timer %d has idx %d; want -1", p.at, p.idx)
			}
			got = append(got, p.at)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("popDue(%d) = %v; want %v", tc.now, got, tc.want)
		}
	}
	s.disarm(t50) // popped already: a no-op
	if len(s.heap) != 0 {
		t.Errorf("heap holds %d timers; want none", len(s.heap))
	}
}

func TestSchedulePlan(t *testing.T) {
	for _, tc := range []struct {
		name  string
		armed []int64
		next  int64
		want  int64
	}{
		{"nothing armed", nil, 100, 100},
		{"a timer due sooner", []int64{40, 70}, 100, 40},
		{"timers due later", []int64{150}, 100, 100},
		{"a timer due at the same time", []int64{100}, 100, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s schedule
			s.nextWake = 1 << 62 // never woken by arming here
			for _, at := range tc.armed {
				s.arm(&timer{at: at, idx: -1})
			}
			if got := s.plan(tc.next); got != tc.want || s.nextWake != tc.want {
				t.Errorf("plan(%d) = %d, nextWake %d; want %d", tc.next, got, s.nextWake, tc.want)
			}
		})
	}
}

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

func TestRetryAfterTimeout(t *testing.T) {
	budget := natsutil.RetryBudget{Ratio: 0.2, Min: 2}
	for _, tc := range []struct {
		name                string
		timeouts, max       int
		retrying            bool
		inflight, nRetrying int64
		want                retryVerdict
	}{
		{"first timeout, budget free", 1, 3, false, 10, 0, retryFirst},
		{"second timeout, counted already", 2, 3, true, 10, 5, retryAgain},
		{"attempts used up", 3, 3, true, 10, 0, noRetry},
		{"attempts used up, never retried", 3, 3, false, 10, 0, noRetry},
		{"budget spent at the minimum", 1, 3, false, 10, 2, retryDenied},
		{"the ratio above the minimum", 1, 3, false, 100, 19, retryFirst},
		{"the ratio spent", 1, 3, false, 100, 20, retryDenied},
		{"one attempt allowed", 1, 1, false, 10, 0, noRetry},
	} {
		if got := retryAfterTimeout(tc.timeouts, tc.max, tc.retrying, budget, tc.inflight, tc.nRetrying); got != tc.want {
			t.Errorf("%s: retryAfterTimeout(%d, %d, %v, %+v, %d, %d) = %v; want %v", tc.name,
				tc.timeouts, tc.max, tc.retrying, budget, tc.inflight, tc.nRetrying, got, tc.want)
		}
	}
}
