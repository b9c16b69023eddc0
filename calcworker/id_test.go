package calcworker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/wire"
)

// TestIDTaken: a second worker with a live id refuses to start, names the
// id, and says nothing for it on the way out; once the first has stopped,
// the id is free again.
func TestIDTaken(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	first := start(t, url, calcworker.Config{ID: "w-dup", Prefix: "p2"})

	nc := connect(t, url)
	beats := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe(wire.Subjects{Prefix: "p2"}.Heartbeat("w-dup"), beats); err != nil {
		t.Fatal(err)
	}
	second, err := calcworker.New(calcworker.Config{Conn: nc, ID: "w-dup", Prefix: "p2"})
	if err != nil {
		t.Fatal(err)
	}
	err = second.Start()
	if !errors.Is(err, calcworker.ErrIDTaken) || !strings.Contains(err.Error(), `"w-dup"`) {
		t.Fatalf("second Start = %v; want ErrIDTaken naming \"w-dup\"", err)
	}
	host := first.Heartbeat().Host
	if host != "" && !strings.Contains(err.Error(), host) {
		t.Errorf("second Start = %v; want the holder's host %q in it", err, host)
	}
	// A refused worker must not announce draining for the live one: what
	// it published on nc arrives before the flush's answer.
	_ = second.Shutdown(context.Background())
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for len(beats) > 0 {
		var hb wire.Heartbeat
		if m := <-beats; json.Unmarshal(m.Data, &hb) == nil && hb.State != wire.StateUp {
			t.Fatalf("after the refused start, a heartbeat for w-dup said %q", hb.State)
		}
	}

	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	start(t, url, calcworker.Config{ID: "w-dup", Prefix: "p2"}) // free again
}

// TestCheckIDs asks for several ids at once: the live ones are named in
// the order asked, and the free ones are known from the broker's "no
// responders" without waiting for the deadline.
func TestCheckIDs(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	start(t, url, calcworker.Config{ID: "w-a"})
	start(t, url, calcworker.Config{ID: "w-b", Shared: sharedPool(t)})
	nc := connect(t, url)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	err := calcworker.CheckIDs(ctx, nc, "", []string{"w-b", "w-x", "w-a", "w-y"})
	var te *calcworker.TakenError
	if !errors.As(err, &te) || len(te.Holders) != 2 || te.Holders[0].ID != "w-b" || te.Holders[1].ID != "w-a" {
		t.Fatalf("CheckIDs = %v; want w-b and w-a taken", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("CheckIDs took %v; the free ids should not wait for the deadline", d)
	}
	if err := calcworker.CheckIDs(ctx, nc, "", []string{"w-x", "w-y"}); err != nil {
		t.Errorf("CheckIDs of free ids = %v; want nil", err)
	}
}

// TestCheckIDsFleet asks for a simulated fleet's ids at once, half of them
// live on one connection and one shared pool: every answer is heard.
func TestCheckIDsFleet(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	wnc := connect(t, url)
	shared := sharedPool(t)
	const n = 300
	var ids, live []string
	for i := range 2 * n {
		ids = append(ids, fmt.Sprintf("sim-%d", i))
		if i%2 == 1 {
			continue
		}
		live = append(live, ids[i])
		w, err := calcworker.New(calcworker.Config{Conn: wnc, ID: ids[i], Shared: shared, Heartbeat: time.Hour, ClaimWait: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var te *calcworker.TakenError
	if err := calcworker.CheckIDs(ctx, connect(t, url), "", ids); !errors.As(err, &te) || len(te.Holders) != n {
		t.Fatalf("CheckIDs of %d ids, %d live: %v", 2*n, n, err)
	}
	for i, h := range te.Holders {
		if h.ID != live[i] {
			t.Fatalf("holder %d is %s; want %s", i, h.ID, live[i])
		}
	}
}

// TestCheckIDsSilentListener: something that subscribes to every subject
// without answering (nats sub 'calc.>') leaves the ids unanswered: they
// count as free when the wait ends. A cancelled check is an error.
func TestCheckIDsSilentListener(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	listener := connect(t, url)
	if _, err := listener.Subscribe("calc.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := listener.Flush(); err != nil { // the broker has the subscription
		t.Fatal(err)
	}
	const wait = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	began := time.Now()
	if err := calcworker.CheckIDs(ctx, nc, "", []string{"w-x"}); err != nil {
		t.Errorf("CheckIDs with a silent listener = %v; want nil", err)
	}
	if d := time.Since(began); d < wait {
		t.Errorf("CheckIDs with a silent listener returned after %v; want the whole wait, %v: no one answered", d, wait)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := calcworker.CheckIDs(ctx, nc, "", []string{"w-x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("CheckIDs cancelled = %v; want context.Canceled", err)
	}
	// The worker still starts, after the wait.
	start(t, url, calcworker.Config{ID: "w-x", ClaimWait: 50 * time.Millisecond})
}

// TestClaimSquatter: a connection that answers the claims of an id it does
// not hold keeps a worker of that id from starting, as SECURITY.md says
// (with --auth only a worker credential may); once it stops, the worker
// starts.
func TestClaimSquatter(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	snc := connect(t, url)
	squat, err := snc.Subscribe("calc.claim.w-victim", func(m *nats.Msg) { _ = m.Respond([]byte("{}")) })
	if err != nil {
		t.Fatal(err)
	}
	if err := snc.Flush(); err != nil { // the broker has the subscription
		t.Fatal(err)
	}
	w, err := calcworker.New(calcworker.Config{Conn: connect(t, url), ID: "w-victim"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); !errors.Is(err, calcworker.ErrIDTaken) || !strings.Contains(err.Error(), `"w-victim"`) {
		t.Fatalf("Start beside a squatter = %v; want ErrIDTaken naming w-victim", err)
	}
	if err := squat.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := snc.Flush(); err != nil {
		t.Fatal(err)
	}
	start(t, url, calcworker.Config{ID: "w-victim"})
}

// TestTakenErrorMessage: a few ids named, the rest counted; what a holder
// says about its host is quoted when it is not plain.
func TestTakenErrorMessage(t *testing.T) {
	e := &calcworker.TakenError{}
	for i := range 7 {
		e.Holders = append(e.Holders, wire.Heartbeat{ID: fmt.Sprintf("w-%d", i)})
	}
	e.Holders[0].Host = "vm.example"
	e.Holders[1].Host = "evil\x1b[2J"
	e.Holders[2].StartedAt = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	want := `calcworker: a live worker already has id "w-0" (on vm.example), "w-1" (on "evil\x1b[2J"), ` +
		`"w-2" (up since 2026-12-02T10:00:00Z), "w-3", "w-4", and 2 more`
	if got := e.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	if !errors.Is(e, calcworker.ErrIDTaken) {
		t.Error("errors.Is(TakenError, ErrIDTaken) = false")
	}
}

// TestClaimWaitNegative: without the check, a test can start an impostor.
func TestClaimWaitNegative(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	start(t, url, calcworker.Config{ID: "w-i"})
	start(t, url, calcworker.Config{ID: "w-i", ClaimWait: -1})
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^w-[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := calcworker.NewID()
		if !re.MatchString(id) || !wire.ValidID(id) {
			t.Fatalf("NewID() = %q; want w- and 16 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewID() gave %q twice", id)
		}
		seen[id] = true
	}
}

func sharedPool(t testing.TB) *calcworker.Shared {
	s := calcworker.NewShared(2, 0)
	t.Cleanup(s.Close)
	return s
}
