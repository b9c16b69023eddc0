package dispatcher

import (
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/natsutil"
)

// holdTable is an in-flight table whose live workers the test sets, with
// a 1s hold.
func holdTable(live *[]*member) *inflight {
	var t inflight
	t.init(func(skip func(*member) bool) *member {
		for _, w := range *live {
			if skip == nil || !skip(w) {
				return w
			}
		}
		return nil
	}, time.Second)
	t.holdFor = time.Second
	return &t
}

// TestHoldParksUntilAWorkerComesBack: without a hold a request that finds
// no worker is finished (503); during one it is parked, with its
// deadline; when a worker comes up it is sent on.
func TestHoldParksUntilAWorkerComesBack(t *testing.T) {
	a := &member{id: "a"}
	var live []*member
	tab := holdTable(&live)
	r0 := newRequest("r0", nil, t0)
	tab.admit(10)
	if s := tab.open(r0, t0, time.Minute); s.kind != stepNone || !r0.done {
		t.Fatalf("open with no worker and no hold = %+v; want none (503)", s)
	}
	tab.holdFrom(t0, false)
	r := newRequest("r", nil, t0)
	tab.admit(10)
	if s := tab.open(r, t0.Add(10*time.Millisecond), time.Minute); s.kind != stepWait || !r.parked || r.done {
		t.Fatalf("open during the hold = %+v, parked %v, done %v; want parked", s, r.parked, r.done)
	}
	if got, _ := tab.holdOver(t0.Add(999 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("holdOver before its end = %v; want nothing", got)
	}
	live = []*member{a}
	got := tab.resume()
	if len(got) != 1 || got[0] != r || r.parked || tab.holdUntil != 0 {
		t.Fatalf("resume = %v, parked %v, hold until %d; want r, unparked, no hold", got, r.parked, tab.holdUntil)
	}
	if s := tab.next(r, t0.Add(20*time.Millisecond)); s.kind != stepSend || s.w != a {
		t.Fatalf("next after resume = %+v; want to send to a", s)
	}
	if n := tab.count.Load(); n != 1 {
		t.Fatalf("count %d; want 1 (r in flight)", n)
	}
}

// TestHoldEndsWith503: a request parked with no attempt is finished when
// the hold ends with no worker back; one waiting on an attempt is not.
func TestHoldEndsWith503(t *testing.T) {
	var live []*member
	tab := holdTable(&live)
	tab.holdFrom(t0, false)
	r := newRequest("r", nil, t0)
	tab.admit(10)
	if s := tab.open(r, t0, time.Minute); s.kind != stepWait || !r.parked {
		t.Fatalf("open during the hold = %+v; want parked", s)
	}
	if got, held := tab.holdOver(t0.Add(time.Second)); len(got) != 1 || got[0] != r || !r.done || r.parked || held != time.Second {
		t.Fatalf("holdOver at its end = %v (held %v), done %v, parked %v; want r finished after 1s", got, held, r.done, r.parked)
	}
	if n := tab.count.Load(); n != 0 || len(tab.parked) != 0 {
		t.Fatalf("count %d, parked %d; want 0, 0", n, len(tab.parked))
	}
	if s := tab.open(newRequest("r2", nil, t0), t0.Add(time.Second), time.Minute); s.kind != stepNone {
		t.Fatalf("open after the hold = %+v; want none (503)", s)
	}
}

// TestStuckRequestGoesBackToItsWorker: a request whose only attempt's
// worker fell silent, with no other worker, is parked; when a worker
// comes up it may go to that same worker again (its forward may have been
// lost in a partition), the silent attempt staying open.
func TestStuckRequestGoesBackToItsWorker(t *testing.T) {
	a := &member{id: "a"}
	live := []*member{a}
	tab := holdTable(&live)
	r := newRequest("r", nil, t0)
	r.id = "id-r"
	tab.admit(10)
	if s := tab.open(r, t0, time.Minute); s.kind != stepSend || s.w != a {
		t.Fatalf("open = %+v; want to send to a", s)
	}
	if reqs := tab.silentFrom(a); len(reqs) != 1 {
		t.Fatalf("silentFrom(a) = %v; want r", reqs)
	}
	if s := tab.next(r, t0.Add(500*time.Millisecond)); s.kind != stepWait || !r.parked {
		t.Fatalf("next with a tried and silent = %+v, parked %v; want to wait, parked", s, r.parked)
	}
	if got := tab.resume(); len(got) != 1 || got[0] != r {
		t.Fatalf("resume = %v; want r", got)
	}
	s := tab.next(r, t0.Add(time.Second))
	if s.kind != stepSend || s.w != a || s.replyTo != "" {
		t.Fatalf("next after resume = %+v; want a again, on an attempt subject of its own", s)
	}
	if len(r.open) != 2 || a.inflight.Load() != 2 {
		t.Fatalf("open attempts %d, a in flight %d; want 2, 2", len(r.open), a.inflight.Load())
	}
}

// TestSilentAtMaxAttemptsIsParked: a request whose last allowed attempt
// falls silent, on a worker heard about other requests meanwhile, is
// parked rather than left to its deadline, and goes out again on resume.
func TestSilentAtMaxAttemptsIsParked(t *testing.T) {
	a := &member{id: "a"}
	a.progress.Store(100)
	tab := testTable(a)
	budget := natsutil.RetryBudget{Ratio: 0.2, Min: 10}
	r := newRequest("r", nil, t0)
	tab.admit(10)
	if s := tab.open(r, t0, time.Minute); s.kind != stepSend || s.w != a {
		t.Fatalf("open = %+v; want to send to a", s)
	}
	at := t0.Add(silentAfterBeats * 100 * time.Millisecond)
	a.sign.hear(at.UnixNano()) // a answers others: it is this attempt that is silent
	due := tab.due(at, nil)
	if len(due) != 1 || due[0].att == nil {
		t.Fatalf("due = %v; want the attempt's watch", due)
	}
	if e := tab.expire(due[0], at, 1, budget, true); e.kind != expireTimeout || e.verdict != noRetry {
		t.Fatalf("expire = %v, %v; want a timeout with no retry left", e.kind, e.verdict)
	}
	if !r.parked || r.done {
		t.Fatalf("parked %v, done %v; want parked, waiting", r.parked, r.done)
	}
	reqs := tab.resume()
	if len(reqs) != 1 || reqs[0] != r {
		t.Fatalf("resume = %v; want r", reqs)
	}
	if s := tab.next(r, at); s.kind != stepSend || s.w != a {
		t.Fatalf("next after resume = %+v; want a again", s)
	}
}
