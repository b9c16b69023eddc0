package dispatcher

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// noPool is a core's pool with no worker.
type noPool struct{}

func (noPool) Pick(*flight.Skip) *flight.Worker { return nil }
func (noPool) AnyLive(*flight.Skip) bool        { return false }
func (noPool) Inflight(*flight.Worker, int)     {}

// TestOrphanAccounting: what the core counts for the replies it keeps,
// as the shell hands them over (orphanEvent), is at least what they
// really cost in memory, for one-byte replies (the flood that a byte
// count of payloads and headers alone let through) and for larger ones;
// and a flood of them stays within the bounds.
func TestOrphanAccounting(t *testing.T) {
	hand := func(c *flight.Core, id, data string) {
		s := wire.Subjects{}
		m := nats.NewMsg(s.HandOver("w-0123456789abcdef"))
		m.Header.Set(wire.HdrRequestID, id)
		m.Header.Set(wire.HdrWorker, "w-0123456789abcdef")
		m.Header.Set(wire.HdrClientReply, "_INBOX.0123456789abcdefghijkl.1")
		m.Data = []byte(data)
		c.Step(orphanEvent(m, len(s.HandOver("")), t0.UnixNano()), nil)
	}
	for _, size := range []int{1, 100, 4000} {
		c := flight.New(flight.Config{}, noPool{})
		data := strings.Repeat("x", size)
		for i := range 2 * flight.DefaultOrphanMax {
			hand(c, fmt.Sprintf("%036d", i), data)
		}
		n, b := c.OrphansKept()
		if n > flight.DefaultOrphanMax || b > flight.DefaultOrphanBytes {
			t.Fatalf("%d-byte replies: %d kept, %d bytes; want at most %d and %d", size, n, b, flight.DefaultOrphanMax, flight.DefaultOrphanBytes)
		}
		t.Logf("%d-byte replies: %d kept, %d bytes counted each", size, n, b/n)
	}
	// The whole cost, measured from nothing: replies handed over and kept.
	c := flight.New(flight.Config{}, noPool{})
	before := heapInUse()
	for i := range 10000 {
		hand(c, fmt.Sprintf("%036d", i), "1")
	}
	used := heapInUse() - before
	if _, counted := c.OrphansKept(); uint64(counted) < used {
		t.Fatalf("10,000 one-byte replies counted as %d bytes; they take %d", counted, used)
	}
	_, counted := c.OrphansKept()
	t.Logf("10,000 one-byte replies: %d bytes counted, %d in use", counted, used)
	runtime.KeepAlive(c)
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
