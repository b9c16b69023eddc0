package dispatcher

import (
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// TestEventQueueBounded: a flood of events beyond the queue is dropped
// and counted, and emitting never waits, even with nothing publishing.
func TestEventQueueBounded(t *testing.T) {
	var q eventQueue
	q.init(nil) // never started: nothing takes from the queue
	start := time.Now()
	for range eventQueueLen + 500 {
		q.emit("calc.events.worker.w.up", wire.Event{Kind: wire.StateUp})
	}
	if got := q.dropped.Load(); got != 500 {
		t.Fatalf("dropped = %d; want 500", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("emitting took %v", d)
	}
	q.stop() // a queue never started stops at once
	q.stop()
}
