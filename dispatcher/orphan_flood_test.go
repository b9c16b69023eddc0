package dispatcher

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// TestAttackHandOverFlood: 40,000 one-byte hand-overs, each for an id of
// its own, as a worker credential may send them, leave the store within
// its bounds by its own accounting (which TestOrphanAccounting checks
// against the heap), and a client's request is served meanwhile.
func TestAttackHandOverFlood(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	dial := dialer(t, url)
	d, err := New(Config{Conn: dial(), ID: "d-flood", Heartbeat: 100 * time.Millisecond, DeadAfter: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(t.Context()) })
	// A worker that answers at once.
	wnc := dial()
	if _, err := wnc.Subscribe(d.subj.Worker("w-a"), func(m *nats.Msg) {
		out := nats.NewMsg(m.Reply)
		out.Header.Set(wire.HdrRequestID, m.Header.Get(wire.HdrRequestID))
		out.Data = []byte(`{"result":5}`)
		_ = wnc.PublishMsg(out)
	}); err != nil {
		t.Fatal(err)
	}
	hb := []byte(`{"id":"w-a","state":"up","seq":1,"started_at":"2026-01-01T00:00:00Z"}`)
	testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		_ = wnc.Publish(d.subj.Heartbeat("w-a"), hb)
		if d.LiveWorkers() != 1 {
			return fmt.Errorf("w-a not up")
		}
		return nil
	})

	evil := dial()
	const n = 40_000
	for i := range n {
		m := nats.NewMsg(d.subj.HandOver("w-evil"))
		id := strconv.Itoa(i)
		m.Header[wire.HdrRequestID] = []string{id}
		m.Header[wire.HdrWorker] = []string{"w-evil"}
		m.Header[wire.HdrClientReply] = []string{"_INBOX.x." + id}
		m.Data = []byte("1")
		if err := evil.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := evil.Flush(); err != nil {
		t.Fatal(err)
	}
	cl := dial()
	if r, err := cl.Request(d.subj.Request(), []byte("add 2 3"), 10*time.Second); err != nil || wire.ErrorFromMsg(r) != nil {
		t.Fatalf("a client's request during the flood: %v", err)
	}
	// Once the hand-overs read are all counted, the store is at its bound.
	testutil.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		p, _ := d.subs.orphans.Delivered()
		c, _ := d.coreStats()
		if k := int64(c.OrphansKept); k < min(p, int64(flight.DefaultOrphanMax)) || k == 0 {
			return fmt.Errorf("%d kept of %d delivered", k, p)
		}
		if pending, _, _ := d.subs.orphans.Pending(); pending > 0 {
			return fmt.Errorf("%d hand-overs waiting", pending)
		}
		return nil
	})
	d.inflight.mu.Lock()
	kept, bytes := d.inflight.core.OrphansKept()
	d.inflight.mu.Unlock()
	delivered, _ := d.subs.orphans.Delivered()
	t.Logf("%d hand-overs delivered, %d kept, %d bytes counted", delivered, kept, bytes)
	if kept > flight.DefaultOrphanMax || bytes > flight.DefaultOrphanBytes {
		t.Fatalf("%d kept, %d bytes; want at most %d and %d", kept, bytes, flight.DefaultOrphanMax, flight.DefaultOrphanBytes)
	}
}
