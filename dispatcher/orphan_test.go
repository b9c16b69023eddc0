package dispatcher

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

func testOrphan(id string, at time.Time, data string) *orphan {
	return &orphan{id: id, client: "inbox.1", hdr: nats.Header{wire.HdrRequestID: {id}, wire.HdrWorker: {"w"}}, data: []byte(data), at: at.UnixNano()}
}

// TestOrphanAnswersTheResend: an orphan with no request open here is
// kept; the resend of its request (keyed) is answered with it, uncounted
// and unforwarded, once; a request whose id the dispatcher gave it never
// takes one.
func TestOrphanAnswersTheResend(t *testing.T) {
	a := &member{id: "a"}
	tab := testTable(a)
	if r, _, _ := tab.adopt(testOrphan("id-1", t0, `{"result":5}`)); r != nil {
		t.Fatalf("adopt with nothing open returned %v; want it kept", r)
	}
	unkeyed := newRequest("inbox.0", nil, t0)
	unkeyed.id = "id-1" // as if the dispatcher had drawn the same id
	tab.admit(10)
	if s := tab.open(unkeyed, t0, time.Minute); s.kind != stepSend {
		t.Fatalf("open(unkeyed) = %+v; want an attempt of its own", s)
	}
	r := newRequest("inbox.1", nil, t0.Add(time.Second))
	r.id, r.keyed = "id-1", true
	tab.admit(10)
	s := tab.open(r, t0.Add(time.Second), time.Minute)
	if s.kind != stepOrphan || string(s.orphan.data) != `{"result":5}` {
		t.Fatalf("open(resend) = %+v; want the orphan", s)
	}
	if n := tab.count.Load(); n != 1 || len(r.tried) != 0 || a.inflight.Load() != 1 {
		t.Fatalf("count %d, tried %d, a in flight %d; want 1 (the unkeyed one), 0, 1", n, len(r.tried), a.inflight.Load())
	}
	r2 := newRequest("inbox.1", nil, t0.Add(time.Second))
	r2.id, r2.keyed = "id-1", true
	tab.admit(10)
	if s := tab.open(r2, t0.Add(time.Second), time.Minute); s.kind != stepSend {
		t.Fatalf("open(second resend) = %+v; want an attempt: the orphan answers once", s)
	}
}

// TestOrphanFinishesTheOpenRequest: an orphan for a request open here
// (its resend came first) answers it, and its attempts end.
func TestOrphanFinishesTheOpenRequest(t *testing.T) {
	a := &member{id: "a"}
	tab := testTable(a)
	r := newRequest("inbox.1", nil, t0)
	r.id, r.keyed = "id-1", true
	tab.admit(10)
	if s := tab.open(r, t0, time.Minute); s.kind != stepSend {
		t.Fatalf("open = %+v; want an attempt", s)
	}
	got, attempts, _ := tab.adopt(testOrphan("id-1", t0, `{"result":5}`))
	if got != r || attempts != 1 || !r.done {
		t.Fatalf("adopt = %v, %d attempts, done %v; want r, 1, done", got, attempts, r.done)
	}
	if tab.count.Load() != 0 || a.inflight.Load() != 0 || len(tab.pending) != 0 || len(tab.orphans.byID) != 0 {
		t.Fatalf("count %d, a in flight %d, pending %d, kept %d; want all 0",
			tab.count.Load(), a.inflight.Load(), len(tab.pending), len(tab.orphans.byID))
	}
	if _, kind, _, _ := tab.reply(1, attemptKey{}, false, false, 3); kind != replyLate {
		t.Fatalf("the worker's own reply after the orphan = %v; want late", kind)
	}
}

// TestOrphanageBounds: orphans expire after orphanKeep, the oldest go
// past maxOrphanBytes, and the same id kept twice keeps the later.
func TestOrphanageBounds(t *testing.T) {
	var g orphanage
	g.putLocked(testOrphan("old", t0, "1"), t0.UnixNano())
	later := t0.Add(orphanKeep)
	if o := g.takeLocked("old", "inbox.1", later.UnixNano()); o != nil {
		t.Fatalf("took an orphan %v old; want it expired", orphanKeep)
	}
	g.putLocked(testOrphan("a", t0, "first"), t0.UnixNano())
	g.putLocked(testOrphan("a", t0, "second"), t0.UnixNano())
	if o := g.takeLocked("a", "inbox.other", t0.UnixNano()); o != nil {
		t.Fatalf("took %v for another client's resend; want nothing", o)
	}
	if o := g.takeLocked("a", "inbox.1", t0.UnixNano()); o == nil || string(o.data) != "second" {
		t.Fatalf("took %v; want the later of two", o)
	}
	big := strings.Repeat("x", maxOrphanBytes/4)
	for _, id := range []string{"b1", "b2", "b3", "b4", "b5"} {
		g.putLocked(testOrphan(id, t0, big), t0.UnixNano())
	}
	if g.bytes > maxOrphanBytes || g.byID["b1"] != nil || g.byID["b5"] == nil {
		t.Fatalf("kept %d bytes, b1 %v, b5 %v; want at most %d, the oldest gone, the newest kept",
			g.bytes, g.byID["b1"] != nil, g.byID["b5"] != nil, maxOrphanBytes)
	}
	g.putLocked(testOrphan("c", later, "1"), later.UnixNano())
	if len(g.byID) != 1 || g.byID["c"] == nil || len(g.fifo) != 1 {
		t.Fatalf("kept %d (fifo %d) after orphanKeep; want c alone", len(g.byID), len(g.fifo))
	}
	if n := g.kept.Load(); n != 9 {
		t.Errorf("kept counted %d; want 9", n)
	}
	// old; b1 and b2 past the bound; b3 to b5 at c's arrival. The
	// first a was replaced, not expired; the second was answered.
	if e, a := g.expired.Load(), g.answered.Load(); e != 6 || a != 1 {
		t.Errorf("expired %d, answered %d; want 6, 1", e, a)
	}
}

// TestOrphanAccounting: what the orphanage counts for its orphans is at
// least what they really cost in memory, for one-byte replies (the flood
// that a byte count of payloads and headers alone let through) and for
// larger ones; and a flood of them stays within maxOrphans and
// maxOrphanBytes.
func TestOrphanAccounting(t *testing.T) {
	for _, size := range []int{1, 100, 4000} {
		var g orphanage
		data := strings.Repeat("x", size)
		for i := range 2 * maxOrphans {
			id := fmt.Sprintf("%036d", i)
			hdr := nats.Header{}
			hdr.Set(wire.HdrRequestID, id)
			hdr.Set(wire.HdrWorker, "w-0123456789abcdef")
			g.putLocked(&orphan{id: id, hdr: hdr, data: bytes.Clone([]byte(data)), at: t0.UnixNano()}, t0.UnixNano())
		}
		if len(g.byID) > maxOrphans || g.bytes > maxOrphanBytes {
			t.Fatalf("%d-byte replies: %d kept, %d bytes; want at most %d and %d", size, len(g.byID), g.bytes, maxOrphans, maxOrphanBytes)
		}
		t.Logf("%d-byte replies: %d kept, %d bytes counted each", size, len(g.byID), g.bytes/len(g.byID))
	}
	// The whole cost, measured from nothing: orphans made and kept.
	before := heapInUse()
	var g orphanage
	for i := range 10000 {
		id := fmt.Sprintf("%036d", i)
		m := nats.NewMsg("x")
		m.Header.Set(wire.HdrRequestID, id)
		m.Header.Set(wire.HdrWorker, "w-0123456789abcdef")
		g.putLocked(&orphan{id: id, hdr: m.Header, data: bytes.Clone([]byte("1")), at: t0.UnixNano()}, t0.UnixNano())
	}
	used := heapInUse() - before
	if counted := uint64(g.bytes); counted < used {
		t.Fatalf("10,000 one-byte orphans counted as %d bytes; they take %d", counted, used)
	}
	t.Logf("10,000 one-byte orphans: %d bytes counted, %d in use", g.bytes, used)
	runtime.KeepAlive(&g)
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestOrphanExpiresOnItsOwn: an orphan kept is let go once it expires,
// with no other arriving after it; the same id handed over again and
// again keeps one entry, and fifo stays bounded.
func TestOrphanExpiresOnItsOwn(t *testing.T) {
	old := orphanKeep
	orphanKeep = 50 * time.Millisecond
	t.Cleanup(func() { orphanKeep = old })
	tab := testTable(&member{id: "a"})
	t.Cleanup(tab.stopOrphans)
	now := time.Now()
	for range 3 * maxOrphans {
		tab.adopt(testOrphan("same", now, "1"))
	}
	tab.mu.Lock()
	kept, fifo := len(tab.orphans.byID), len(tab.orphans.fifo)
	tab.mu.Unlock()
	if kept != 1 || fifo > 2*maxOrphans+1 {
		t.Fatalf("%d kept, fifo of %d; want 1 and at most %d", kept, fifo, 2*maxOrphans+1)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		tab.mu.Lock()
		defer tab.mu.Unlock()
		if n, b := len(tab.orphans.byID), tab.orphans.bytes; n != 0 || b != 0 {
			return fmt.Errorf("%d orphans of %d bytes kept after they expired", n, b)
		}
		return nil
	})
	if n := tab.orphans.expired.Load(); n == 0 {
		t.Fatal("none counted expired")
	}
}
