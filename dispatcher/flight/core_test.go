package flight

import (
	"testing"
	"time"
)

func TestReplyAnswersOnce(t *testing.T) {
	a, b := &Worker{ID: "a"}, &Worker{ID: "b"}
	g := newRig(t, Config{MaxAttempts: 3, AttemptTimeout: time.Second, Budget: Budget{Ratio: 0.2, Min: 10}}, a, b)
	r := req("r", 5*time.Second)
	g.want(g.step(Event{Kind: EvRequest, Now: 0, Req: r}), "forward r to a")
	// The attempt timeout sends it on; the first attempt answers.
	g.want(g.step(Event{Kind: EvTick, Now: 1000 * ms}), "failure a; forward r to b")
	g.want(g.step(Event{Kind: EvReply, Now: 1100 * ms, Worker: "a", ID: "r", AckTo: "bounce"}), "success a; relay r from a after 2; ack bounce")
	if r.State() != ReqDone || g.c.Inflight() != 0 || g.c.Retrying() != 0 || len(g.c.pending) != 0 || len(g.c.timers.heap) != 0 {
		t.Fatalf("after the answer: %v, inflight %d, retrying %d, pending %d, timers %d", r.State(), g.c.Inflight(), g.c.Retrying(), len(g.c.pending), len(g.c.timers.heap))
	}
	g.want(g.step(Event{Kind: EvReply, Now: 1200 * ms, Worker: "b", ID: "r"}), "")
	if a.Inflight() != 0 || b.Inflight() != 0 {
		t.Fatalf("in flight a %d, b %d; want 0", a.Inflight(), b.Inflight())
	}
}

func TestDeadlineAndDeniedRetry(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3, AttemptTimeout: time.Second}, a) // zero budget
	r := req("r", 1500*time.Millisecond)
	g.step(Event{Kind: EvRequest, Req: r})
	// The budget denies the retry: the watch looks again later (here
	// past the deadline); a denied timeout counts against no one yet.
	g.want(g.step(Event{Kind: EvTick, Now: 20000 * ms}), "error r 504")
	if c := g.c.Counts(); c.Denied != 1 {
		t.Fatalf("denied %d; want 1", c.Denied)
	}
}

func TestFaultRetriesThenFinal(t *testing.T) {
	a, b := &Worker{ID: "a"}, &Worker{ID: "b"}
	g := newRig(t, Config{MaxAttempts: 2}, a, b)
	r := req("r", time.Minute)
	g.step(Event{Kind: EvRequest, Req: r})
	g.want(g.step(Event{Kind: EvNoResponders, Token: 1}), "gone a")
	g.want(g.step(Event{Kind: EvReply, Worker: "a", ID: "r", Code: 500}), "failure a; forward r to b")
	g.want(g.step(Event{Kind: EvReply, Worker: "b", ID: "r", Code: 503}), "failure b; relay r from b after 2")
}

func TestResendJoinsAndKeptReplyAnswersResend(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 2}, a)
	r := req("r", time.Minute)
	g.step(Event{Kind: EvRequest, Req: r})
	again := req("r", time.Minute)
	again.Progress = true
	g.want(g.step(Event{Kind: EvRequest, Req: again}), "progress r")
	if again.State() != ReqDone || g.c.Inflight() != 1 {
		t.Fatalf("resend %v, inflight %d; want joined, 1", again.State(), g.c.Inflight())
	}
	// A reply handed over answers the open request.
	g.want(g.step(Event{Kind: EvOrphan, ID: "r", Worker: "x", Size: 10}), "relay r from x after 1")
	// Another one is kept, and answers its resend without a forward.
	g.want(g.step(Event{Kind: EvOrphan, Now: 1, ID: "s", Worker: "x", Size: 10}), "")
	g.want(g.step(Event{Kind: EvRequest, Now: 2, Req: req("s", time.Minute)}), "relay s from x after 0")
	g.want(g.step(Event{Kind: EvOrphan, Now: 3, ID: "t", Worker: "x", Size: 10, Code: 500}), "")
	g.want(g.step(Event{Kind: EvRequest, Now: 4, Req: req("t", time.Minute)}), "forward t to a")
}

func TestHoldParksUntilAWorkerComesBack(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3, HoldFor: time.Second})
	g.want(g.step(Event{Kind: EvRequest, Req: req("r0", time.Minute)}), "error r0 503")
	// a's heartbeats stop: the last live worker; a hold starts.
	g.pool.live = []*Worker{a}
	g.step(Event{Kind: EvWorkerUp, W: a})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Now: 0, Req: r}), "forward r to a")
	g.pool.remove(a)
	g.want(g.step(Event{Kind: EvWorkerDown, Now: 5 * ms, W: a, Cause: DownSilent, NoneLive: true}), "hold 1s")
	if r.State() != ReqParked {
		t.Fatalf("r %v; want parked", r.State())
	}
	r2 := req("r2", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Now: 10 * ms, Req: r2}), "")
	g.pool.live = []*Worker{a}
	g.want(g.step(Event{Kind: EvWorkerUp, Now: 20 * ms, W: a}), "resume 2; forward r to a; forward r2 to a")
	if g.c.Holding(30*ms) || g.c.Parked() != 0 {
		t.Fatalf("holding %v, parked %d; want no hold, none parked", g.c.Holding(30*ms), g.c.Parked())
	}
}

func TestHoldEndsWith503(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3, HoldFor: time.Second}, a)
	g.pool.remove(a)
	g.step(Event{Kind: EvWorkerDown, W: a, Cause: DownSilent, NoneLive: true})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "")
	g.want(g.step(Event{Kind: EvTick, Now: 999 * ms}), "")
	g.want(g.step(Event{Kind: EvTick, Now: 1000 * ms}), "error r 503")
	g.want(g.step(Event{Kind: EvRequest, Now: 1000 * ms, Req: req("r2", time.Minute)}), "error r2 503")
	// A draining worker leaving starts no hold; "no responders" a short one.
	g.want(g.step(Event{Kind: EvWorkerDown, Now: 2000 * ms, W: a, Cause: DownLeft, NoneLive: true}), "")
	g.want(g.step(Event{Kind: EvWorkerDown, Now: 2000 * ms, W: a, Cause: DownNoResponders, NoneLive: true}), "hold 250ms")
}

// A request whose last allowed attempt falls silent, on a worker heard
// about other requests meanwhile, is parked rather than left to its
// deadline, and goes out again, to the same worker, when one is heard.
func TestSilentAtMaxAttemptsIsParked(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 1, ProgressEvery: 100 * time.Millisecond, MuteFor: time.Second}, a)
	g.step(Event{Kind: EvWorkerUp, W: a, Every: 100 * time.Millisecond})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "forward r to a")
	// a answers another request just before r's watch: r alone is silent.
	g.pool.live = nil
	other := req("o", time.Minute)
	g.pool.live = []*Worker{a}
	g.step(Event{Kind: EvRequest, Now: 390 * ms, Req: other})
	a.hear(399 * ms)
	// The watch fires with a heard: r's attempt expires, r is parked, and
	// since a in rotation is not mute, it resumes at once, to a again.
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms}), "failure a; resume 1; forward r to a")
	if len(r.open) != 2 || r.open[0].state != AttExpired || r.open[1].state != AttLive {
		t.Fatalf("r's attempts %v; want expired, live", r.open)
	}
}

// An attempt silent past its window with another try allowed but no
// other worker to take it: the request is parked, not left waiting on
// the silent attempt until its deadline, and resumes on a worker heard
// (the simulator's seed 95: a reply lost with its dispatcher's
// connection, one worker, the request answered 504 at its deadline).
func TestSilentWithNoOtherWorkerIsParked(t *testing.T) {
	a := &Worker{ID: "a"}
	every := 100 * time.Millisecond
	g := newRig(t, Config{MaxAttempts: 3, ProgressEvery: every, MuteFor: time.Second, Budget: Budget{Min: 10}}, a)
	g.step(Event{Kind: EvWorkerUp, W: a, Every: every})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "forward r to a")
	a.hear(399 * ms) // a speaks of other requests, not of r
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms}), "failure a; resume 1; forward r to a")
	if len(r.open) != 2 || r.open[0].state != AttSilent || r.open[1].state != AttLive || r.State() != ReqOpen {
		t.Fatalf("r %v, attempts %v; want open, silent and live", r.State(), r.open)
	}
}

// A worker whose heartbeats stopped reaching the dispatcher, but which
// named an attempt within its silence, keeps it: the request is not sent
// on while the worker computes it.
func TestDownSilentKeepsAttemptHeard(t *testing.T) {
	a, b := &Worker{ID: "a"}, &Worker{ID: "b"}
	every := 100 * time.Millisecond
	g := newRig(t, Config{MaxAttempts: 3, ProgressEvery: every, MuteFor: time.Second, Budget: Budget{Min: 10}}, a, b)
	g.step(Event{Kind: EvWorkerUp, W: a, Every: every})
	g.step(Event{Kind: EvWorkerUp, W: b, Every: every})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "forward r to a")
	g.step(Event{Kind: EvProgress, Now: 100 * ms, Worker: "a", IDs: []string{"r"}})
	g.pool.remove(a)
	g.want(g.step(Event{Kind: EvWorkerDown, Now: 150 * ms, W: a, Cause: DownSilent}), "")
	if r.open[0].state != AttLive {
		t.Fatalf("attempt %v; want live", r.open[0].state)
	}
	// Heard no more: its watch sends r on.
	g.want(g.step(Event{Kind: EvTick, Now: 500 * ms}), "failure a; silent a; forward r to b")
}

// An attempt its worker names again after the request went on is alive
// again: the parked request waits on it instead of going out again.
func TestSilentAttemptHeardAgainRevives(t *testing.T) {
	a := &Worker{ID: "a"}
	every := 100 * time.Millisecond
	g := newRig(t, Config{MaxAttempts: 1, ProgressEvery: every, MuteFor: time.Second}, a)
	g.step(Event{Kind: EvWorkerUp, W: a, Every: every})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "forward r to a")
	g.pool.live = nil // a out of rotation: r stays parked
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms}), "failure a; silent a")
	if r.State() != ReqParked {
		t.Fatalf("r %v; want parked", r.State())
	}
	g.want(g.step(Event{Kind: EvProgress, Now: 450 * ms, Worker: "a", IDs: []string{"r"}}), "")
	if r.State() != ReqOpen || r.open[0].state != AttLive {
		t.Fatalf("r %v, attempt %v; want open, live", r.State(), r.open[0].state)
	}
}

// A worker silent on everything is mute: its requests go on at once, to
// another worker, the silent attempts staying open for a late reply.
func TestSilentWorker(t *testing.T) {
	a, b := &Worker{ID: "a"}, &Worker{ID: "b"}
	every := 100 * time.Millisecond
	g := newRig(t, Config{MaxAttempts: 3, ProgressEvery: every, MuteFor: time.Second, Budget: Budget{Min: 10}}, a, b)
	g.step(Event{Kind: EvWorkerUp, W: a, Every: every})
	g.step(Event{Kind: EvWorkerUp, W: b, Every: every})
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "forward r to a")
	// Unread messages: silence says nothing yet.
	g.want(g.step(Event{Kind: EvTick, Now: 400 * ms, Backlog: true}), "")
	g.want(g.step(Event{Kind: EvTick, Now: 500 * ms}), "failure a; silent a; forward r to b")
	g.want(g.step(Event{Kind: EvReply, Now: 600 * ms, Worker: "a", ID: "r"}), "success a; relay r from a after 2; cancel r on b")
}

// Progress keeps an attempt alive past its silence; a hedge goes to the
// next worker without blaming the first.
func TestProgressAndHedge(t *testing.T) {
	a, b := &Worker{ID: "a"}, &Worker{ID: "b"}
	every := 100 * time.Millisecond
	g := newRig(t, Config{MaxAttempts: 3, ProgressEvery: every, HedgeAfter: 250 * time.Millisecond, Budget: Budget{Min: 10}}, a, b)
	g.step(Event{Kind: EvWorkerUp, W: a, Every: every})
	g.step(Event{Kind: EvWorkerUp, W: b, Every: every})
	r := req("r", time.Minute)
	g.step(Event{Kind: EvRequest, Req: r})
	for now := int64(100); now <= 200; now += 100 {
		g.step(Event{Kind: EvProgress, Now: now * ms, Worker: "a", IDs: []string{"r"}})
	}
	g.want(g.step(Event{Kind: EvTick, Now: 250 * ms}), "forward r to b")
	for now := int64(300); now <= 900; now += 100 {
		g.step(Event{Kind: EvProgress, Now: now * ms, Worker: "a", IDs: []string{"r"}})
		g.step(Event{Kind: EvProgress, Now: now * ms, Worker: "b", IDs: []string{"r"}})
		g.want(g.step(Event{Kind: EvTick, Now: now*ms + 1}), "")
	}
	// b's attempt is hedged too, with no worker left for it: both wait.
	if len(r.open) != 2 || r.open[0].state != AttHedged || r.open[1].state != AttHedged || r.State() != ReqOpen {
		t.Fatalf("attempts %v, r %v; want two hedged, open", r.open, r.State())
	}
}

// Shutdown answers every request still open.
func TestShutdown(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{}, a)
	g.step(Event{Kind: EvRequest, Req: req("r", time.Minute)})
	g.want(g.step(Event{Kind: EvShutdown, Msg: "bye"}), "error r 503")
	if g.c.Inflight() != 0 || a.Inflight() != 0 {
		t.Fatalf("inflight %d, a %d; want 0", g.c.Inflight(), a.Inflight())
	}
}

// A worker that sends no progress past the attempt timeout may just be
// slow: with no other worker, its request waits on it, and is not sent
// to it again.
func TestSlowWorkerWithoutProgressIsNotResent(t *testing.T) {
	a := &Worker{ID: "a"}
	g := newRig(t, Config{MaxAttempts: 3, AttemptTimeout: time.Second, MuteFor: time.Second, Budget: Budget{Min: 10}}, a)
	r := req("r", time.Minute)
	g.want(g.step(Event{Kind: EvRequest, Req: r}), "forward r to a")
	g.want(g.step(Event{Kind: EvTick, Now: 1000 * ms}), "failure a")
	if r.State() != ReqOpen || len(r.open) != 1 || r.open[0].state != AttLive {
		t.Fatalf("r %v, attempts %v; want open, waiting on a live attempt", r.State(), r.open)
	}
	g.want(g.step(Event{Kind: EvReply, Now: 1500 * ms, Worker: "a", ID: "r"}), "success a; relay r from a after 1")
}
