package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/natsutil"
)

// progressWorker is a member that announced a 100ms progress interval.
func progressWorker(id string) *member {
	w := &member{id: id}
	w.progress.Store(100)
	return w
}

// TestWatchAt: the next firing of an attempt's watch.
func TestWatchAt(t *testing.T) {
	const ms = int64(time.Millisecond)
	for _, tc := range []struct {
		name                      string
		sent, heard               int64
		silence, hedge, attemptTO time.Duration
		hedged                    bool
		want                      int64
	}{
		{"no progress: the attempt timeout", 0, 0, 0, 0, time.Second, false, 1000 * ms},
		{"no progress, hedging set: the attempt timeout still", 0, 0, 0, 200 * time.Millisecond, time.Second, false, 1000 * ms},
		{"progress: silence after the last sign", 0, 300 * ms, 400 * time.Millisecond, 0, time.Second, false, 700 * ms},
		{"a hedge due first", 0, 300 * ms, 400 * time.Millisecond, 200 * time.Millisecond, time.Second, false, 200 * ms},
		{"a hedge sent: silence only", 0, 300 * ms, 400 * time.Millisecond, 200 * time.Millisecond, time.Second, true, 700 * ms},
		{"a hedge due after the silence", 0, 0, 400 * time.Millisecond, 2 * time.Second, time.Second, false, 400 * ms},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := watchAt(tc.sent, tc.heard, tc.silence, tc.hedge, tc.attemptTO, tc.hedged); got != tc.want {
				t.Errorf("watchAt(%d, %d, %v, %v, %v, %v) = %d; want %d",
					tc.sent, tc.heard, tc.silence, tc.hedge, tc.attemptTO, tc.hedged, got, tc.want)
			}
		})
	}
}

// TestProgressKeepsAnAttemptAlive: a job that makes progress for 3s is
// never retried nor blamed; once its worker falls silent, the attempt
// fails 400ms (4 intervals) after its last sign of life.
func TestProgressKeepsAnAttemptAlive(t *testing.T) {
	a, b := progressWorker("a"), progressWorker("b")
	tab := testTable(a, b)
	tab.muteFor = 100 * 365 * 24 * time.Hour // muted() reads the real clock, far past t0
	budget := natsutil.RetryBudget{Ratio: 0.2, Min: 10}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRequest("reply", nil, t0)
	r.id = "req-1"
	tab.admit(10)
	if s := tab.open(r, t0, time.Minute); s.kind != stepSend || s.w != a || s.replyTo == "" {
		t.Fatalf("open = %+v; want to send to a on its shared subject", s)
	}
	now := time.Duration(0)
	for now < 3*time.Second {
		now += 100 * time.Millisecond
		tab.heard(0, "a", []string{"req-1"}, at(now))
		for _, tm := range tab.due(at(now), nil) {
			if e := tab.expire(tm, at(now), 3, budget, true); e.kind != expireStale {
				t.Fatalf("at %v, alive: expire = %+v; want stale", now, e)
			}
		}
	}
	last := now
	var got []string
	for now < last+time.Second {
		now += 10 * time.Millisecond
		for _, tm := range tab.due(at(now), nil) {
			if e := tab.expire(tm, at(now), 3, budget, true); e.kind != expireStale {
				got = append(got, fmt.Sprintf("%v@%v:%v", e.kind, now-last, e.verdict))
			}
		}
	}
	// Not a word from a about anything: a is silent, every request on it
	// goes on, and it is skipped by retries.
	want := fmt.Sprint([]string{fmt.Sprintf("%v@%v:%v", expireSilentWorker, 400*time.Millisecond, noRetry)})
	if fmt.Sprint(got) != want || !a.sign.muted() {
		t.Fatalf("after the last sign of life: %v, a muted %v; want %v, muted", got, a.sign.muted(), want)
	}
	if reqs := tab.silentFrom(a); len(reqs) != 1 || reqs[0] != r {
		t.Fatalf("silentFrom(a) = %v; want r", reqs)
	}
	if reqs := tab.silentFrom(a); len(reqs) != 0 {
		t.Fatalf("silentFrom(a) twice = %v; want nothing the second time", reqs)
	}
	if s := tab.next(r, at(now)); s.kind != stepSend || s.w != b {
		t.Fatalf("next = %+v; want to send to b", s)
	}
	if reqs := tab.goneFrom("a"); len(reqs) != 0 {
		t.Fatalf("goneFrom(a) after silentFrom = %v; want nothing: r went on already", reqs)
	}
}

// TestOneSilentAttempt: an attempt never mentioned while its worker is
// heard about others (its progress lost) fails alone, against the request's
// budget.
func TestOneSilentAttempt(t *testing.T) {
	a, b := progressWorker("a"), progressWorker("b")
	tab := testTable(a, b)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRequest("reply", nil, t0)
	tab.admit(10)
	tab.open(r, t0, time.Minute)
	a.sign.hear(at(350 * time.Millisecond).UnixNano()) // about another request
	due := tab.due(at(400*time.Millisecond), nil)
	if len(due) != 1 {
		t.Fatalf("due at 400ms: %d timers; want the watch", len(due))
	}
	if e := tab.expire(due[0], at(400*time.Millisecond), 3, natsutil.RetryBudget{Min: 10}, true); e.kind != expireTimeout || e.w != a || e.verdict != retryFirst {
		t.Fatalf("expire = %+v; want a timeout on a, retryFirst", e)
	}
	if a.sign.muted() {
		t.Fatalf("a muted; want not: it was heard 50ms ago")
	}
}

// TestHedgeIsNotAFailure: with HedgeAfter, an attempt alive but slow is
// hedged once, as a hedge (not blamed); the first reply cancels the other
// attempt's worker.
func TestHedgeIsNotAFailure(t *testing.T) {
	a, b := progressWorker("a"), progressWorker("b")
	tab := testTable(a, b)
	tab.hedgeAfter = 200 * time.Millisecond
	budget := natsutil.RetryBudget{Ratio: 0.2, Min: 10}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRequest("reply", nil, t0)
	r.id = "req-1"
	tab.admit(10)
	tab.open(r, t0, time.Minute)
	tab.heard(0, "a", []string{"req-1"}, at(150*time.Millisecond))
	due := tab.due(at(200*time.Millisecond), nil)
	if len(due) != 1 {
		t.Fatalf("due at 200ms: %d timers; want the hedge", len(due))
	}
	if e := tab.expire(due[0], at(200*time.Millisecond), 3, budget, true); e.kind != expireHedge || e.w != a || e.verdict != retryFirst {
		t.Fatalf("expire at 200ms = %+v; want a hedge of a's attempt, retryFirst", e)
	}
	if s := tab.next(r, at(200*time.Millisecond)); s.kind != stepSend || s.w != b {
		t.Fatalf("next = %+v; want to send to b", s)
	}
	_, kind, _, cancel := tab.reply(0, attemptKey{"b", "req-1"}, false, false, 3)
	if kind != replyFinal || len(cancel) != 1 || cancel[0] != a {
		t.Fatalf("reply from b = %v, cancel %v; want final, cancel a", kind, cancel)
	}
}

// TestProgressToClient: a request whose client asked for progress wakes
// every ProgressInterval until its deadline, which cancels its worker.
func TestProgressToClient(t *testing.T) {
	a := progressWorker("a")
	tab := testTable(a)
	tab.progressEvery = 100 * time.Millisecond
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRequest("reply", nil, t0)
	r.id, r.progress = "req-1", true
	tab.admit(10)
	tab.open(r, t0, 350*time.Millisecond)
	var got []string
	for now := time.Duration(0); now <= time.Second; now += 10 * time.Millisecond {
		tab.heard(0, "a", []string{"req-1"}, at(now)) // the worker is alive: only the client's timer fires
		for _, tm := range tab.due(at(now), nil) {
			e := tab.expire(tm, at(now), 3, natsutil.RetryBudget{}, true)
			got = append(got, fmt.Sprintf("%v@%v/%d", e.kind, now, len(e.cancel)))
		}
	}
	want := fmt.Sprint([]string{
		fmt.Sprintf("%v@%v/0", expireProgress, 100*time.Millisecond),
		fmt.Sprintf("%v@%v/0", expireProgress, 200*time.Millisecond),
		fmt.Sprintf("%v@%v/0", expireProgress, 300*time.Millisecond),
		fmt.Sprintf("%v@%v/1", expireDeadline, 350*time.Millisecond),
	})
	if fmt.Sprint(got) != want || !r.done || tab.count.Load() != 0 || len(tab.timers.heap) != 0 {
		t.Fatalf("expiries %v, done %v, count %d, timers %d; want %v, done, 0, 0",
			got, r.done, tab.count.Load(), len(tab.timers.heap), want)
	}
}

// TestSilenceUnheardIsNoNews: while replies wait unread (or the sweep ran
// late), a silent attempt is looked at again a quarter of its silence
// later instead of failing.
func TestSilenceUnheardIsNoNews(t *testing.T) {
	a, b := progressWorker("a"), progressWorker("b")
	tab := testTable(a, b)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRequest("reply", nil, t0)
	tab.admit(10)
	tab.open(r, t0, time.Minute)
	due := tab.due(at(400*time.Millisecond), nil)
	if len(due) != 1 {
		t.Fatalf("due at 400ms: %d timers; want the watch", len(due))
	}
	if e := tab.expire(due[0], at(400*time.Millisecond), 3, natsutil.RetryBudget{Min: 10}, false); e.kind != expireStale {
		t.Fatalf("expire with replies unread = %+v; want stale", e)
	}
	if due := tab.due(at(499*time.Millisecond), nil); len(due) != 0 {
		t.Fatalf("due before 500ms: %d timers", len(due))
	}
	due = tab.due(at(500*time.Millisecond), nil)
	if len(due) != 1 {
		t.Fatalf("due at 500ms: %d timers; want the watch again", len(due))
	}
	if e := tab.expire(due[0], at(500*time.Millisecond), 3, natsutil.RetryBudget{Min: 10}, true); e.kind != expireSilentWorker || e.w != a {
		t.Fatalf("expire with everything read = %+v; want a silent", e)
	}
}

// TestSilenceFollowsTheTicks: a worker whose progress ticks come every
// 100ms gets 400ms; one whose ticks come late gets more, up to 3 × 400ms;
// messages of one tick on several subjects, and a pause, teach nothing.
func TestSilenceFollowsTheTicks(t *testing.T) {
	const every = 100 * time.Millisecond
	base := silentAfterBeats * every
	ms := func(n int64) int64 { return t0.UnixNano() + n*int64(time.Millisecond) }
	var l liveness
	for i := int64(0); i <= 20; i++ {
		l.tick(ms(100*i), every)
		l.tick(ms(100*i+2), every) // the same tick, another subject
	}
	if got := l.silence(base); got != base {
		t.Fatalf("ticks every 100ms: silence %v; want %v", got, base)
	}
	for i := int64(1); i <= 40; i++ {
		l.tick(ms(2000+250*i), every)
	}
	if got := l.silence(base); got < 900*time.Millisecond || got > 3*base {
		t.Fatalf("ticks every 250ms: silence %v; want about 1s, at most %v", got, 3*base)
	}
	l.tick(ms(60000), every) // after a pause of a minute
	if got := l.silence(base); got < 900*time.Millisecond {
		t.Fatalf("after a pause: silence %v; want it unchanged", got)
	}
	var slow liveness
	for i := int64(0); i <= 40; i++ {
		slow.tick(ms(2100*i), every)
	}
	if got := slow.silence(base); got != base {
		t.Fatalf("ticks 21 intervals apart (pauses): silence %v; want %v", got, base)
	}
}

// TestHedgePerRequest: a request's own Calc-Hedge-Ms hedges it though the
// dispatcher does not hedge.
func TestHedgePerRequest(t *testing.T) {
	a, b := progressWorker("a"), progressWorker("b")
	tab := testTable(a, b)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	r := newRequest("reply", nil, t0)
	r.id, r.hedge = "req-1", 150*time.Millisecond
	tab.admit(10)
	tab.open(r, t0, time.Minute)
	tab.heard(0, "a", []string{"req-1"}, at(100*time.Millisecond))
	due := tab.due(at(150*time.Millisecond), nil)
	if len(due) != 1 {
		t.Fatalf("due at 150ms: %d timers; want the hedge", len(due))
	}
	if e := tab.expire(due[0], at(150*time.Millisecond), 3, natsutil.RetryBudget{Min: 10}, true); e.kind != expireHedge || e.w != a {
		t.Fatalf("expire at 150ms = %+v; want a hedge of a's attempt", e)
	}
}
