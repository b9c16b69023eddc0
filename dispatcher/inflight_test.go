package dispatcher

import (
	"fmt"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/natsutil"
)

// testTable returns an in-flight table over workers, chosen in order
// among those not tried yet, with a 1s attempt timeout.
func testTable(workers ...*member) *inflight {
	var t inflight
	t.init(func(skip func(*member) bool) *member {
		for _, w := range workers {
			if skip == nil || !skip(w) {
				return w
			}
		}
		return nil
	}, time.Second)
	return &t
}

// TestExpire walks one request through its timers with an explicit clock:
// an attempt timeout sends it on, the reply to the first attempt answers
// it, and every timer left is stale. Then a request meets its deadline.
func TestExpire(t *testing.T) {
	a, b := &member{id: "a"}, &member{id: "b"}
	tab := testTable(a, b)
	budget := natsutil.RetryBudget{Ratio: 0.2, Min: 10}
	at := func(d time.Duration) time.Time { return t0.Add(d) }

	r := newRequest("reply", nil, at(0))
	if !tab.admit(10) {
		t.Fatal("admit refused a request under the cap")
	}
	if s := tab.open(r, at(0), 5*time.Second); s.kind != stepSend || s.w != a {
		t.Fatalf("open = %+v; want to send to a", s)
	}
	if due := tab.due(at(999*time.Millisecond), nil); len(due) != 0 {
		t.Fatalf("due before the attempt timeout: %d timers", len(due))
	}
	due := tab.due(at(time.Second), nil)
	if len(due) != 1 || due[0].att == nil {
		t.Fatalf("due at 1s = %v; want the attempt timeout", due)
	}
	e := tab.expire(due[0], at(time.Second), 3, budget, true)
	kind, w, attempts, v := e.kind, e.w, e.attempts, e.verdict
	if kind != expireTimeout || w != a || attempts != 1 || v != retryFirst || tab.retrying.Load() != 1 {
		t.Fatalf("expire(attempt timeout) = %v, %v, %d, %v, retrying %d; want a timeout on a, 1 attempt, retryFirst, 1",
			kind, w, attempts, v, tab.retrying.Load())
	}
	if s := tab.next(r, at(time.Second)); s.kind != stepSend || s.w != b {
		t.Fatalf("next = %+v; want to send to b", s)
	}
	// The first attempt answers; the second attempt's timer is left.
	got, rk, n, cancel := tab.reply(1, attemptKey{}, false, false, 3)
	if len(cancel) != 0 {
		t.Fatalf("reply to attempt 1 cancels %v; want none: b sends no progress, so knows no cancel", cancel)
	}
	if rk != replyFinal || got.w != a || n != 2 || !r.done {
		t.Fatalf("reply to attempt 1 = %v on %v, %d attempts, done %v; want final from a, 2 attempts, done",
			rk, got.w, n, r.done)
	}
	if tab.count.Load() != 0 || tab.retrying.Load() != 0 || len(tab.pending) != 0 || len(tab.timers.heap) != 0 {
		t.Fatalf("after the answer: count %d, retrying %d, pending %d, timers %d; want all 0",
			tab.count.Load(), tab.retrying.Load(), len(tab.pending), len(tab.timers.heap))
	}
	if _, rk, _, _ := tab.reply(2, attemptKey{}, false, false, 3); rk != replyLate {
		t.Fatalf("reply to attempt 2 = %v; want late", rk)
	}
	if e := tab.expire(&r.dl, at(5*time.Second), 3, budget, true); e.kind != expireStale {
		t.Fatalf("expire(deadline of a done request) = %v; want stale", e.kind)
	}

	// A request whose workers never answer: its deadline ends it, after
	// an attempt timeout that the zero budget does not let retry.
	r2 := newRequest("reply2", nil, at(10*time.Second))
	tab.admit(10)
	tab.open(r2, at(10*time.Second), 1500*time.Millisecond)
	var kinds []string
	for _, tm := range tab.due(at(20*time.Second), nil) {
		e := tab.expire(tm, at(20*time.Second), 3, natsutil.RetryBudget{}, true)
		kinds = append(kinds, fmt.Sprintf("%v/%d/%v", e.kind, e.attempts, e.verdict))
	}
	want := fmt.Sprint([]string{
		fmt.Sprintf("%v/1/%v", expireTimeout, retryDenied),
		fmt.Sprintf("%v/1/%v", expireDeadline, noRetry),
	})
	if fmt.Sprint(kinds) != want || !r2.done || tab.count.Load() != 0 {
		t.Fatalf("expiries = %v, done %v, count %d; want %v, done, 0", kinds, r2.done, tab.count.Load(), want)
	}
}

// TestNextWithNoWorkerLeft: a request with an attempt open waits for it;
// once that attempt's worker is gone, or with none open, it is finished.
func TestNextWithNoWorkerLeft(t *testing.T) {
	a := &member{id: "a"}
	tab := testTable(a)
	r := newRequest("reply", nil, t0)
	tab.admit(10)
	if s := tab.open(r, t0, time.Minute); s.kind != stepSend {
		t.Fatalf("open = %+v; want to send", s)
	}
	if s := tab.next(r, t0); s.kind != stepWait {
		t.Fatalf("next with a open = %+v; want to wait", s)
	}
	if reqs := tab.goneFrom("a"); len(reqs) != 1 || reqs[0] != r {
		t.Fatalf("goneFrom(a) = %v; want r", reqs)
	}
	if reqs := tab.goneFrom("a"); len(reqs) != 0 {
		t.Fatalf("goneFrom(a) twice = %v; want nothing the second time", reqs)
	}
	if s := tab.next(r, t0); s.kind != stepNone || s.tried != 1 || !r.done {
		t.Fatalf("next with a gone = %+v, done %v; want none after 1 attempt, done", s, r.done)
	}
	if s := tab.next(r, t0); s.kind != stepDone {
		t.Fatalf("next once done = %+v; want done", s)
	}
	if a.inflight.Load() != 0 || tab.count.Load() != 0 {
		t.Fatalf("worker in flight %d, count %d; want 0, 0", a.inflight.Load(), tab.count.Load())
	}
}

// TestReplyKinds: a reply found by its worker and request id; a fault
// ends only its attempt while another worker may be tried, and the
// request once maxAttempts workers were; "no responders" changes nothing.
func TestReplyKinds(t *testing.T) {
	a, b := &member{id: "a"}, &member{id: "b"}
	tab := testTable(a, b)
	r := newRequest("reply", nil, t0)
	r.id = "req-1"
	tab.admit(10)
	tab.open(r, t0, time.Minute)
	keyA, keyB := attemptKey{"a", "req-1"}, attemptKey{"b", "req-1"}
	if got, kind, _, _ := tab.reply(0, keyA, true, false, 2); kind != replyNoResponders || got.w != a || len(r.open) != 1 {
		t.Fatalf("no responders = %v on %v, open %v; want noResponders on a, 1 open", kind, got.w, r.open)
	}
	if _, kind, _, _ := tab.reply(0, keyA, false, true, 2); kind != replyRetry || r.done || len(r.open) != 0 || a.inflight.Load() != 0 {
		t.Fatalf("fault from a = %v, done %v, open %v; want retry, not done, none open", kind, r.done, r.open)
	}
	if s := tab.next(r, t0); s.kind != stepSend || s.w != b {
		t.Fatalf("next = %+v; want to send to b", s)
	}
	if got, kind, n, _ := tab.reply(0, keyB, false, true, 2); kind != replyFinal || got.w != b || n != 2 || !r.done {
		t.Fatalf("fault from b = %v on %v, %d attempts, done %v; want final from b, 2, done", kind, got.w, n, r.done)
	}
	if _, kind, _, _ := tab.reply(0, keyB, false, false, 2); kind != replyLate {
		t.Fatalf("a second reply from b = %v; want late", kind)
	}
}
