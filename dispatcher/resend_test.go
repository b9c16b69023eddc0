package dispatcher

import (
	"testing"
	"time"
)

// TestResendJoinsTheOpenRequest: a resend (the id its client chose, the
// same reply subject) of a request still open joins it, uncounted, with
// no attempt of its own; the same id on another reply subject is served
// on its own; once the first is answered, the id is free again.
func TestResendJoinsTheOpenRequest(t *testing.T) {
	a := &member{id: "a"}
	tab := testTable(a)
	keyed := func(reply string) *request {
		r := newRequest(reply, nil, t0)
		r.id, r.keyed = "id-1", true
		if !tab.admit(10) {
			t.Fatal("admit refused a request under the cap")
		}
		return r
	}
	r1 := keyed("inbox.1")
	if s := tab.open(r1, t0, time.Minute); s.kind != stepSend || s.w != a {
		t.Fatalf("open(first) = %+v; want to send to a", s)
	}
	r2 := keyed("inbox.1")
	if s := tab.open(r2, t0, time.Minute); s.kind != stepJoined {
		t.Fatalf("open(resend) = %+v; want joined", s)
	}
	if n := tab.count.Load(); n != 1 || a.inflight.Load() != 1 || len(r2.tried) != 0 {
		t.Fatalf("count %d, a in flight %d, resend tried %d; want 1, 1, 0", n, a.inflight.Load(), len(r2.tried))
	}
	r3 := keyed("inbox.other")
	if s := tab.open(r3, t0, time.Minute); s.kind != stepSend || r3.keyed {
		t.Fatalf("open(same id, other reply) = %+v, keyed %v; want its own attempt, not keyed", s, r3.keyed)
	}
	if _, kind, _, _ := tab.reply(1, attemptKey{}, false, false, 3); kind != replyFinal || !r1.done {
		t.Fatalf("reply to the first = %v, done %v; want final", kind, r1.done)
	}
	if _, kind, _, _ := tab.reply(2, attemptKey{}, false, false, 3); kind != replyFinal || !r3.done {
		t.Fatalf("reply to the other = %v, done %v; want final", kind, r3.done)
	}
	if len(tab.byID) != 0 || tab.count.Load() != 0 {
		t.Fatalf("byID %v, count %d after both answers; want empty, 0", tab.byID, tab.count.Load())
	}
	r4 := keyed("inbox.1")
	if s := tab.open(r4, t0, time.Minute); s.kind != stepSend {
		t.Fatalf("open(resend after the answer) = %+v; want an attempt of its own", s)
	}
}
