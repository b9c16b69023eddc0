package flight

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Ported from the dispatcher's table tests: each walks requests through
// their states with an explicit clock.

const every = 100 * time.Millisecond

// progressRig is a rig whose workers announce a 100ms progress interval.
func progressRig(t *testing.T, cfg Config, ids ...string) (*rig, []*Worker) {
	var ws []*Worker
	for _, id := range ids {
		ws = append(ws, &Worker{ID: id})
	}
	cfg.MaxAttempts = max(cfg.MaxAttempts, 3)
	if cfg.MuteFor == 0 {
		cfg.MuteFor = time.Hour
	}
	g := newRig(t, cfg, ws...)
	for _, w := range ws {
		g.step(Event{Kind: EvWorkerUp, W: w, Every: every})
	}
	return g, ws
}

// A job that makes progress for 3s is never retried nor blamed; once its
// worker falls silent, it is found silent 400ms (4 intervals) after its
// last sign of life, muted, and every request on it goes on.
func TestProgressKeepsAnAttemptAlive(t *testing.T) {
	g, ws := progressRig(t, Config{Budget: Budget{Ratio: 0.2, Min: 10}}, "a", "b")
	r := req("r", time.Minute)
	if as := g.step(Event{Kind: EvRequest, Req: r}); !as[0].Shared {
		t.Fatalf("first forward %+v; want it on a's shared subject", as[0])
	}
	now := int64(0)
	for now < 3000*ms {
		now += 100 * ms
		g.step(Event{Kind: EvProgress, Now: now, Worker: "a", IDs: []string{"r"}})
		g.want(g.step(Event{Kind: EvTick, Now: now}), "")
	}
	last := now
	var got []string
	for now < last+500*ms {
		now += 10 * ms
		if s := acts(g.step(Event{Kind: EvTick, Now: now})); s != "" {
			got = append(got, fmt.Sprintf("%s@%dms", s, (now-last)/ms))
		}
	}
	if want := "[failure a; silent a; forward r to b@400ms]"; fmt.Sprint(got) != want || !ws[0].mutedAt(now) {
		t.Fatalf("after the last sign of life: %v, a muted %v; want %s, muted", got, ws[0].mutedAt(now), want)
	}
	// a going down now sends r on no more: it went on already.
	g.want(g.step(Event{Kind: EvWorkerDown, Now: now, W: ws[0], Cause: DownSilent}), "")
}

// An attempt never mentioned while its worker is heard about others (its
// progress lost) fails alone, against the request's budget.
func TestOneSilentAttempt(t *testing.T) {
	g, ws := progressRig(t, Config{Budget: Budget{Min: 10}}, "a", "b")
	g.step(Event{Kind: EvRequest, Req: req("r", time.Minute)})
	ws[0].hear(350 * ms) // about another request
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms}), "failure a; forward r to b")
	if ws[0].mutedAt(400 * ms) {
		t.Fatal("a muted; want not: it was heard 50ms ago")
	}
}

// With HedgeAfter, an attempt alive but slow is hedged once, not blamed;
// the first reply cancels the other attempt's worker.
func TestHedgeIsNotAFailure(t *testing.T) {
	g, _ := progressRig(t, Config{HedgeAfter: 200 * time.Millisecond, Budget: Budget{Ratio: 0.2, Min: 10}}, "a", "b")
	g.step(Event{Kind: EvRequest, Req: req("r", time.Minute)})
	g.step(Event{Kind: EvProgress, Now: 150 * ms, Worker: "a", IDs: []string{"r"}})
	g.want(g.step(Event{Kind: EvTick, Now: 200 * ms}), "forward r to b")
	g.want(g.step(Event{Kind: EvReply, Now: 250 * ms, Worker: "b", ID: "r"}), "success b; relay r from b after 2; cancel r on a")
}

// A request's own hedge (Calc-Hedge-Ms) hedges it though the dispatcher
// does not.
func TestHedgePerRequest(t *testing.T) {
	g, _ := progressRig(t, Config{Budget: Budget{Min: 10}}, "a", "b")
	r := req("r", time.Minute)
	r.Hedge = 150 * time.Millisecond
	g.step(Event{Kind: EvRequest, Req: r})
	g.step(Event{Kind: EvProgress, Now: 100 * ms, Worker: "a", IDs: []string{"r"}})
	g.want(g.step(Event{Kind: EvTick, Now: 150 * ms}), "forward r to b")
}

// A request whose client asked for progress gets a message every
// ProgressEvery until its deadline, which cancels its worker.
func TestProgressToClient(t *testing.T) {
	g, ws := progressRig(t, Config{ProgressEvery: 100 * time.Millisecond}, "a")
	r := req("r", 350*time.Millisecond)
	r.Progress = true
	g.step(Event{Kind: EvRequest, Req: r})
	var got []string
	for now := int64(0); now <= 1000*ms; now += 10 * ms {
		g.step(Event{Kind: EvProgress, Now: now, Worker: "a", IDs: []string{"r"}}) // alive: only the client's timer fires
		if s := acts(g.step(Event{Kind: EvTick, Now: now})); s != "" {
			got = append(got, fmt.Sprintf("%s@%d", s, now/ms))
		}
	}
	want := "[progress r@100 progress r@200 progress r@300 error r 504; cancel r on a@350]"
	if fmt.Sprint(got) != want || r.State() != ReqDone || g.c.Inflight() != 0 || len(g.c.timers.heap) != 0 || ws[0].Inflight() != 0 {
		t.Fatalf("got %v, %v, inflight %d, timers %d; want %s, done, none", got, r.State(), g.c.Inflight(), len(g.c.timers.heap), want)
	}
}

// While replies wait unread (or the sweep ran late), a silent attempt is
// looked at again a quarter of its silence later instead of failing.
func TestSilenceUnheardIsNoNews(t *testing.T) {
	g, _ := progressRig(t, Config{Budget: Budget{Min: 10}}, "a", "b")
	g.step(Event{Kind: EvRequest, Req: req("r", time.Minute)})
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms, Backlog: true}), "")
	g.want(g.step(Event{Kind: EvTick, Now: 499 * ms}), "")
	g.want(g.step(Event{Kind: EvTick, Now: 500 * ms}), "failure a; silent a; forward r to b")
}

// A worker whose progress ticks come every 100ms gets 400ms; one whose
// ticks come late gets more, up to 3 × 400ms; messages of one tick on
// several subjects, and a pause, teach nothing.
func TestSilenceFollowsTheTicks(t *testing.T) {
	base := SilentAfterBeats * every
	w := &Worker{ID: "w", progress: every}
	for i := int64(0); i <= 20; i++ {
		w.tick(100 * i * ms)
		w.tick((100*i + 2) * ms) // the same tick, another subject
	}
	if got := silenceOf(base, w.gap); got != base {
		t.Fatalf("ticks every 100ms: silence %v; want %v", got, base)
	}
	for i := int64(1); i <= 40; i++ {
		w.tick((2000 + 250*i) * ms)
	}
	if got := silenceOf(base, w.gap); got < 900*time.Millisecond || got > 3*base {
		t.Fatalf("ticks every 250ms: silence %v; want about 1s, at most %v", got, 3*base)
	}
	w.tick(60000 * ms) // after a pause of a minute
	if got := silenceOf(base, w.gap); got < 900*time.Millisecond {
		t.Fatalf("after a pause: silence %v; want it unchanged", got)
	}
	slow := &Worker{ID: "slow", progress: every}
	for i := int64(0); i <= 40; i++ {
		slow.tick(2100 * i * ms)
	}
	if got := silenceOf(base, slow.gap); got != base {
		t.Fatalf("ticks 21 intervals apart (pauses): silence %v; want %v", got, base)
	}
}

// A request with an attempt open waits for it; once that attempt's
// worker is gone, with no other, it is answered 503.
func TestNoWorkerLeft(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3}, a)
	r := req("r", time.Minute)
	g.step(Event{Kind: EvRequest, Req: r})
	g.pool.remove(a)
	g.want(g.step(Event{Kind: EvWorkerDown, W: a, Cause: DownLeft}), "error r 503")
	if msg := g.out[0].Msg; msg != "no worker available after 1 attempts" {
		t.Fatalf("message %q", msg)
	}
	g.want(g.step(Event{Kind: EvWorkerDown, W: a, Cause: DownLeft}), "")
	if a.Inflight() != 0 || g.c.Inflight() != 0 {
		t.Fatalf("a in flight %d, inflight %d; want 0, 0", a.Inflight(), g.c.Inflight())
	}
}

// A request whose only attempt's worker fell silent, with no other
// worker, is parked; when a worker comes up it may go to that same
// worker again, on a subject of its own, the silent attempt staying open.
func TestStuckRequestGoesBackToItsWorker(t *testing.T) {
	g, ws := progressRig(t, Config{HoldFor: time.Second}, "a")
	a := ws[0]
	r := req("r", time.Minute)
	g.step(Event{Kind: EvRequest, Req: r})
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms}), "failure a; silent a")
	if r.State() != ReqParked {
		t.Fatalf("r %v; want parked", r.State())
	}
	as := g.step(Event{Kind: EvWorkerUp, Now: 500 * ms, W: a, Every: every})
	g.want(as, "resume 1; forward r to a")
	if as[1].Shared || len(r.open) != 2 || a.Inflight() != 2 {
		t.Fatalf("forward %+v, open %d, a in flight %d; want a subject of its own, 2, 2", as[1], len(r.open), a.Inflight())
	}
}

// A resend (the id its client chose, the same reply subject) of a request
// still open joins it, uncounted; the same id on another reply subject is
// served on its own; once answered, the id is free again.
func TestResendJoinsTheOpenRequest(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3}, a)
	r1 := req("id-1", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r1}), "forward id-1 to a")
	g.want(g.step(Event{Kind: EvRequest, Req: req("id-1", time.Minute)}), "")
	if g.c.Inflight() != 1 || a.Inflight() != 1 {
		t.Fatalf("inflight %d, a %d; want 1, 1", g.c.Inflight(), a.Inflight())
	}
	r3 := req("id-1", time.Minute)
	r3.Reply = "inbox.other"
	as := g.step(Event{Kind: EvRequest, Req: r3})
	g.want(as, "forward id-1 to a")
	if as[0].Shared || r3.Keyed {
		t.Fatalf("other client's forward %+v, keyed %v; want a subject of its own, not keyed", as[0], r3.Keyed)
	}
	g.want(g.step(Event{Kind: EvReply, Token: 1}), "success a; relay id-1 from a after 1")
	g.want(g.step(Event{Kind: EvReply, Token: 2}), "success a; relay id-1 from a after 1")
	if len(g.c.byID) != 0 || g.c.Inflight() != 0 {
		t.Fatalf("byID %v, inflight %d; want none", g.c.byID, g.c.Inflight())
	}
	g.want(g.step(Event{Kind: EvRequest, Req: req("id-1", time.Minute)}), "forward id-1 to a")
}

// A kept reply answers a keyed resend once, never a request whose id the
// dispatcher drew; one handed over for a request open here answers it and
// ends its attempts, so that the worker's own reply is late.
func TestOrphans(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3}, a)
	g.want(g.step(Event{Kind: EvOrphan, ID: "id-1", Worker: "w", Size: 5}), "")
	unkeyed := req("id-1", time.Minute)
	unkeyed.Keyed = false
	g.want(g.step(Event{Kind: EvRequest, Req: unkeyed}), "forward id-1 to a")
	g.want(g.step(Event{Kind: EvRequest, Now: 1000 * ms, Req: req("id-1", time.Minute)}), "relay id-1 from w after 0")
	if g.c.Inflight() != 1 {
		t.Fatalf("inflight %d; want 1, the unkeyed one", g.c.Inflight())
	}
	g.want(g.step(Event{Kind: EvRequest, Now: 1000 * ms, Req: req("id-1", time.Minute)}), "forward id-1 to a")
	// id-1 (keyed) is open on attempt 2: a reply handed over answers it.
	g.want(g.step(Event{Kind: EvOrphan, Now: 1100 * ms, ID: "id-1", Worker: "w", Size: 5}), "relay id-1 from w after 1")
	g.want(g.step(Event{Kind: EvReply, Now: 1200 * ms, Token: 2}), "")
	if c := g.c.Counts(); c.OrphansKept != 1 || c.OrphansAnswered != 1 || c.OrphansRelayed != 1 {
		t.Fatalf("counts %+v", c)
	}
}

// Kept replies expire after OrphanKeep, the oldest go past OrphanBytes
// or OrphanMax, and the same id kept twice keeps the later.
func TestOrphanStoreBounds(t *testing.T) {
	var n Counts
	size := 250 - keptOverhead // each costs 250 with the overhead
	s := orphanStore{keep: int64(DefaultOrphanKeep), maxBytes: 1000, max: 10}
	k := func(id string, at int64, payload string) *kept {
		return &kept{id: id, at: at, size: size, payload: payload}
	}
	s.put(k("old", 0, "1"), 0, &n)
	if got := s.take(&Request{ID: "old"}, int64(DefaultOrphanKeep), &n); got != nil {
		t.Fatal("took a reply past OrphanKeep")
	}
	s.put(k("a", 0, "first"), 0, &n)
	s.put(k("a", 0, "second"), 0, &n)
	if got := s.take(&Request{ID: "a"}, 0, &n); got == nil || got.payload != "second" {
		t.Fatalf("took %v; want the later of two", got)
	}
	for _, id := range []string{"b1", "b2", "b3", "b4", "b5"} {
		s.put(k(id, 0, id), 0, &n)
	}
	if s.bytes > 1000 || s.byID["b1"] != nil || s.byID["b5"] == nil {
		t.Fatalf("kept %d bytes, b1 %v, b5 %v; want at most 1000, the oldest gone", s.bytes, s.byID["b1"] != nil, s.byID["b5"] != nil)
	}
	later := int64(DefaultOrphanKeep)
	s.put(k("c", later, "c"), later, &n)
	if len(s.byID) != 1 || s.byID["c"] == nil || len(s.fifo) != 1 {
		t.Fatalf("kept %d (fifo %d) after OrphanKeep; want c alone", len(s.byID), len(s.fifo))
	}
	// old (taken too late); b1 past the bytes; b2 to b5 at c's arrival.
	if n.OrphansExpired != 6 {
		t.Errorf("expired %d; want 6", n.OrphansExpired)
	}
	big := orphanStore{keep: int64(DefaultOrphanKeep), maxBytes: 1 << 30, max: 3}
	for i := range 5 {
		big.put(&kept{id: fmt.Sprint(i), size: 1}, 0, &n)
	}
	if len(big.byID) != 3 || big.byID["1"] != nil || big.byID["4"] == nil {
		t.Fatalf("kept %d past OrphanMax 3; want the newest 3", len(big.byID))
	}
}

// A reply kept is let go once it expires, with no other arriving after
// it (its own timer); the same id handed over again and again keeps one
// entry, and the queue behind it stays bounded.
func TestOrphanExpiresOnItsOwn(t *testing.T) {
	g := newRig(t, Config{OrphanMax: 100}, &Worker{ID: "a"})
	for i := range 300 {
		g.step(Event{Kind: EvOrphan, Now: int64(i), ID: "same", Worker: "w", Size: 10})
	}
	if n, _ := g.c.OrphansKept(); n != 1 || len(g.c.orphans.fifo) > 2*100+1 {
		t.Fatalf("%d kept, queue of %d; want 1 and at most 201", n, len(g.c.orphans.fifo))
	}
	at, ok := g.c.NextTimer()
	if !ok || at != int64(DefaultOrphanKeep)+299 {
		t.Fatalf("next timer %v, %v; want the one kept's expiry, 10s after it came", at, ok)
	}
	for now := at; ; now = at {
		g.step(Event{Kind: EvTick, Now: now})
		if at, ok = g.c.NextTimer(); !ok {
			break
		}
	}
	if n, b := g.c.OrphansKept(); n != 0 || b != 0 || g.c.Counts().OrphansExpired != 1 {
		t.Fatalf("%d kept (%d bytes), %d expired; want none kept, 1 expired", n, b, g.c.Counts().OrphansExpired)
	}
}

// The timer heap: armed timers pop in order, disarmed ones never, and a
// re-armed one moves.
func TestSchedule(t *testing.T) {
	var s schedule
	tm := func(at int64) *timer { return &timer{at: at, idx: -1} }
	t50, t80, t100, t120 := tm(50), tm(80), tm(100), tm(120)
	for _, x := range []*timer{t120, t100, t80, t50} {
		s.arm(x)
	}
	s.disarm(t80)
	s.disarm(t80)
	t120.at = 10
	s.arm(t120) // moved
	var got []string
	for _, now := range []int64{9, 60, 1000} {
		for x := s.pop(now); x != nil; x = s.pop(now) {
			got = append(got, fmt.Sprint(x.at))
		}
		got = append(got, "|")
	}
	if want := "| 10 50 | 100 |"; strings.Join(got, " ") != want {
		t.Fatalf("popped %v; want %s", got, want)
	}
	if _, ok := s.next(); ok || t50.idx != -1 {
		t.Fatal("timers left")
	}
}

// A reply handed over that names its request's reply subject answers a
// request to that subject alone: another client's request of the same id
// is neither answered with it nor takes it.
func TestOrphanAnswersItsOwnClientOnly(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3}, a)
	g.want(g.step(Event{Kind: EvOrphan, ID: "id-1", Client: "inbox.id-1", Worker: "w", Size: 5}), "")
	other := req("id-1", time.Minute)
	other.Reply = "inbox.other"
	g.want(g.step(Event{Kind: EvRequest, Req: other}), "forward id-1 to a")
	g.want(g.step(Event{Kind: EvRequest, Req: req("id-1", time.Minute)}), "relay id-1 from w after 0")
	// Open here for another client: a hand-over for id-1 does not answer it.
	g.want(g.step(Event{Kind: EvOrphan, ID: "id-1", Client: "inbox.id-1", Worker: "w", Size: 5}), "")
	if other.State() != ReqOpen || g.c.Counts().OrphansMismatched != 1 {
		t.Fatalf("other %v, mismatched %d; want open, 1", other.State(), g.c.Counts().OrphansMismatched)
	}
}

// One client's share: past MaxClientInflight its requests are answered
// 503 at once, another client's are not, a resend of one it holds joins
// it all the same, and a request answered frees its slot.
func TestClientShare(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 1, MaxClientInflight: 2}, a)
	of := func(id, share string) *Request {
		r := req(id, time.Minute)
		r.Share = share
		return r
	}
	g.want(g.step(Event{Kind: EvRequest, Req: of("h-1", "hog")}), "forward h-1 to a")
	g.want(g.step(Event{Kind: EvRequest, Req: of("h-2", "hog")}), "forward h-2 to a")
	g.want(g.step(Event{Kind: EvRequest, Req: of("h-3", "hog")}), "error h-3 503")
	g.want(g.step(Event{Kind: EvRequest, Req: of("o-1", "other")}), "forward o-1 to a")
	g.want(g.step(Event{Kind: EvRequest, Req: of("h-1", "hog")}), "") // joined
	g.want(g.step(Event{Kind: EvReply, Token: 1, Payload: "5"}), "success a; relay h-1 from a after 1")
	g.want(g.step(Event{Kind: EvRequest, Req: of("h-4", "hog")}), "forward h-4 to a")
	if n := g.c.Counts().ShareRefused; n != 1 || len(g.c.shares) != 2 || g.c.shares["hog"] != 2 {
		t.Fatalf("refused %d, shares %v; want 1, hog 2 and other 1", n, g.c.shares)
	}
}
