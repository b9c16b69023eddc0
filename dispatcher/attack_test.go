package dispatcher_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// The attacks of SECURITY.md's matrix, each run against a real broker by
// a connection that anyone could open: no credentials are needed on a
// broker without --auth. Each test says what held.

// jsonLog returns a logger writing JSON lines into buf, as the
// dispatcher's log file gets them.
func jsonLog(buf *testutil.SyncBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, nil))
}

// logLines returns the lines of buf whose msg is msg.
func logLines(t testing.TB, buf *testutil.SyncBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func publishHB(t testing.TB, nc *nats.Conn, subject string, hb wire.Heartbeat) {
	t.Helper()
	b, _ := json.Marshal(hb)
	if err := nc.Publish(subject, b); err != nil {
		t.Fatal(err)
	}
}

// TestAttackForgedSubject: fake workers announce subjects of their own
// choosing, and ids that are not their subject's. No request reaches the
// sink or loops through calc.request, and the refusals are logged.
func TestAttackForgedSubject(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log) })
	startWorker(t, url, "w-real", nil)
	waitState(t, d, up("w-real"))

	evil := connect(t, url)
	var sunk, requests atomic.Int64
	for subj, n := range map[string]*atomic.Int64{"evil.sink": &sunk, "calc.request": &requests} {
		if _, err := evil.Subscribe(subj, func(*nats.Msg) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	s := wire.Subjects{}
	now := time.Now()
	publishHB(t, evil, s.Heartbeat("evil1"), wire.Heartbeat{ID: "evil1", Subject: "evil.sink", State: wire.StateUp, StartedAt: now})
	publishHB(t, evil, s.Heartbeat("evil2"), wire.Heartbeat{ID: "evil2", Subject: "calc.request", State: wire.StateUp, StartedAt: now})
	publishHB(t, evil, s.Heartbeat("evil3"), wire.Heartbeat{ID: "w-real", State: wire.StateDraining, Seq: 1 << 62, StartedAt: now})
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := len(logLines(t, &log, "bad heartbeat")); n == 0 {
			return fmt.Errorf("no bad heartbeat logged")
		}
		return nil
	})

	nc := connect(t, url)
	const n = 30
	for i := range n {
		r, err := nc.Request(s.Request(), []byte(fmt.Sprintf("add %d 1", i)), 5*time.Second)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		var rep wire.Reply
		if err := json.Unmarshal(r.Data, &rep); err != nil || rep.Worker != "w-real" || string(rep.Result) != fmt.Sprint(i+1) {
			t.Fatalf("request %d: reply %s; want %d from w-real", i, r.Data, i+1)
		}
	}
	// The evil subscriber's callbacks may trail the replies: wait for its
	// count of the requests, then check that nothing more came.
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if got := requests.Load(); got < n {
			return fmt.Errorf("calc.request carried %d messages; want %d", got, n)
		}
		return nil
	})
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := sunk.Load(); got != 0 {
		t.Fatalf("%d messages reached evil.sink; want 0", got)
	}
	if got := requests.Load(); got != n {
		t.Fatalf("calc.request carried %d messages for %d requests: forwards looped", got, n)
	}
	st := d.Status()
	if st.Total != 1 || st.Workers[0].ID != "w-real" || st.Workers[0].State != wire.StateUp {
		t.Fatalf("table = %+v; want only w-real, up", st.Workers)
	}
}

// TestAttackForgedDraining: forged draining heartbeats for every worker,
// with seq 2^64-1 and each worker's own started_at (public: it is in every
// heartbeat), take them out for at most about one heartbeat interval
// beyond the reorder window (dead-after / 3), not for a minute, and the
// contradiction is logged. A dead-after of 3 s (a window of 1 s) keeps a
// loaded machine's stalls from passing for the attack's effect.
func TestAttackForgedDraining(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log); c.DeadAfter = 3 * time.Second })
	ids := []string{"w-a", "w-b", "w-c"}
	for _, id := range ids {
		startWorker(t, url, id, nil)
	}
	waitState(t, d, up(ids...))

	evil := connect(t, url)
	beats := make(chan *nats.Msg, 64)
	if _, err := evil.ChanSubscribe("calc.heartbeat.*", beats); err != nil {
		t.Fatal(err)
	}
	forged := map[string]bool{}
	for len(forged) < len(ids) {
		hb, err := wire.DecodeHeartbeat((<-beats).Data)
		if err != nil || forged[hb.ID] {
			continue
		}
		hb.State, hb.Seq = wire.StateDraining, ^uint64(0)
		publishHB(t, evil, wire.Subjects{}.Heartbeat(hb.ID), hb)
		forged[hb.ID] = true
	}
	start := time.Now()
	waitState(t, d, map[string]string{"w-a": wire.StateDraining})
	// Back within the window (1 s) and a heartbeat (100 ms), with room
	// for a loaded machine; the old rule kept them out until forgotten.
	testutil.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
		for _, w := range d.Status().Workers {
			if w.State != wire.StateUp {
				return fmt.Errorf("%s is %s", w.ID, w.State)
			}
		}
		return nil
	})
	t.Logf("all workers back up %v after the forged drainings", time.Since(start).Round(time.Millisecond))
	testutil.CheckFor(t, 2*time.Second, 5*time.Millisecond, func() error {
		if len(logLines(t, &log, "worker heartbeats up after a draining heartbeat from the same process: one of them was not its own")) == 0 {
			return fmt.Errorf("contradiction not logged")
		}
		return nil
	})
}

// TestAttackDuplicateID: a second process heartbeating with a live
// worker's id is detected and logged; its draining does not take the
// worker out while the worker heartbeats up.
func TestAttackDuplicateID(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	var log testutil.SyncBuffer
	// Heard within dead-after is what keeps the worker up: 10 s, so that a
	// loaded machine's stall of its heartbeats does not pass for the attack.
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log); c.DeadAfter = 10 * time.Second })
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	evil := connect(t, url)
	other := time.Now().Add(time.Hour)
	testutil.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		publishHB(t, evil, "calc.heartbeat.w-a", wire.Heartbeat{ID: "w-a", State: wire.StateDraining, Seq: 1, StartedAt: other, Host: "evil"})
		if len(logLines(t, &log, "worker id claimed by two live processes")) == 0 {
			return fmt.Errorf("no conflict logged")
		}
		return nil
	})
	// The worker heartbeats every 100 ms: a check every 20 ms would see it
	// draining if the forger's heartbeats counted.
	for range 20 {
		publishHB(t, evil, "calc.heartbeat.w-a", wire.Heartbeat{ID: "w-a", State: wire.StateDraining, Seq: 1, StartedAt: other})
		if err := evil.Flush(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // the attacker's pace, not synchronisation
		for _, w := range d.Status().Workers {
			if w.State != wire.StateUp {
				t.Fatalf("w-a is %s (%s) while its own heartbeats say up", w.State, w.Reason)
			}
		}
	}
}

// TestAttackTableFlood: heartbeats from 3,000 made-up ids fill the table
// to its cap and no further, say so in the log at most once a second, and
// the status reply stays under the broker's max payload with every count.
// When the flood stops, the made-up workers go down and a real one takes
// a place.
func TestAttackTableFlood(t *testing.T) {
	b := brokertest.Start(t, broker.Config{Host: "127.0.0.1", Port: -1, MaxPayload: 16 << 10})
	url := b.ClientURL()
	var log testutil.SyncBuffer
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.Logger = jsonLog(&log); c.MaxWorkers = 500 })

	evil := connect(t, url)
	start := time.Now()
	for i := range 3000 {
		id := fmt.Sprintf("evil-%04d", i)
		publishHB(t, evil, "calc.heartbeat."+id, wire.Heartbeat{ID: id, State: wire.StateUp, Seq: 1, StartedAt: start})
	}
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	var full []map[string]any
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		full = logLines(t, &log, "worker table full: heartbeat from a new worker ignored")
		if st := d.Status(); st.Total != 500 || len(full) == 0 {
			return fmt.Errorf("table of %d, %d lines saying it is full", st.Total, len(full))
		}
		return nil
	})
	if limit := int(time.Since(start)/time.Second) + 2; len(full) > limit {
		t.Fatalf("%d table-full lines in %v; want at most one a second", len(full), time.Since(start))
	}

	// The status reply, as `bilancia status` and `health dispatcher` get it.
	nc := connect(t, url)
	r, err := nc.Request(wire.Subjects{}.Status(), nil, 5*time.Second)
	if err != nil {
		t.Fatalf("status request: %v", err)
	}
	st, err := wire.DecodeStatus(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, n := range st.Counts {
		counted += n
	}
	if len(r.Data) > 16<<10 || !st.Truncated || st.Total != 500 || counted != 500 || len(st.Workers) == 0 {
		t.Fatalf("status: %d bytes, truncated %v, total %d, counts %v, %d rows; want ≤ 16 KiB, truncated, 500 up",
			len(r.Data), st.Truncated, st.Total, st.Counts, len(st.Workers))
	}
	t.Logf("status under flood: %d bytes, %d of %d rows", len(r.Data), len(st.Workers), st.Total)
	// A request naming workers gets their rows, whatever the table's size.
	ask, _ := json.Marshal(wire.StatusRequest{Workers: []string{"evil-2999", "evil-0499", "nobody"}})
	if r, err = nc.Request(wire.Subjects{}.Status(), ask, 5*time.Second); err != nil {
		t.Fatalf("status request for two workers: %v", err)
	}
	if st, err = wire.DecodeStatus(r.Data); err != nil || st.Total != 500 || len(st.Workers) != 1 || st.Workers[0].ID != "evil-0499" {
		t.Fatalf("status for evil-2999 (refused), evil-0499 and nobody: %s; want evil-0499's row and total 500", r.Data)
	}

	// The flood stops: the made-up workers go down after dead-after, and a
	// real worker evicts one.
	startWorker(t, url, "w-real", nil)
	waitState(t, d, up("w-real"))
	if st := d.Status(); st.Total > 500 {
		t.Fatalf("table of %d; cap 500", st.Total)
	}
}
