package dispatcher_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/internal/testutil"
	"github.com/bilancia/bilancia/wire"
)

// benchSetup starts a broker, 3 workers (also on the direct queue-group
// subject) and a dispatcher with request logging on, all in-process.
func benchSetup(b *testing.B) (url string) {
	url = brokertest.Run(b).ClientURL()
	d := startDispatcher(b, url, func(c *dispatcher.Config) {
		c.LogRequests = true
		c.Tick = 0
		c.AttemptTimeout = 0
	})
	for _, id := range []string{"w-a", "w-b", "w-c"} {
		startWorker(b, url, id, func(c *calcworker.Config) { c.ServeDirect = true })
	}
	waitState(b, d, up("w-a", "w-b", "w-c"))
	return url
}

func runParallel(b *testing.B, url, subject string) {
	const clients = 4
	var cls []*client.Client
	for range clients {
		cls = append(cls, newClient(b, url, func(c *client.Config) { c.Subject = subject; c.MaxAttempts = 1 }))
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // 32 outstanding on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		cl := cls[n.Add(1)%clients]
		for pb.Next() {
			if _, err := cl.Do(context.Background(), "add 1 2"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkThroughDispatcher and BenchmarkDirect measure the same load
// through the dispatcher and straight to the workers' queue group; their
// ratio is the cost of the extra hop.
func BenchmarkThroughDispatcher(b *testing.B) {
	runParallel(b, benchSetup(b), "calc.request")
}

func BenchmarkDirect(b *testing.B) {
	runParallel(b, benchSetup(b), "calc.direct")
}

// BenchmarkPendingMemory measures the dispatcher's heap per pending
// request: b.N × 10,000 requests held by a worker that never answers.
// The figure is B/pending; -benchtime=1x gives it for 10,000.
func BenchmarkPendingMemory(b *testing.B) {
	const pending = 10000
	url := brokertest.Run(b).ClientURL()
	d := startDispatcher(b, url, func(c *dispatcher.Config) {
		c.LogRequests = true
		c.RequestTimeout = time.Minute
		c.AttemptTimeout = time.Minute
		c.DeadAfter = time.Hour
		c.MaxInflight = (b.N + 1) * pending
	})
	nc := connect(b, url)
	// A worker that takes everything and answers nothing.
	var sunk atomic.Int64
	sink, err := nc.Subscribe("calc.worker.w-sink", func(*nats.Msg) { sunk.Add(1) })
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Unsubscribe()
	replies, _ := nc.Subscribe("_INBOX.sink.>", func(*nats.Msg) {})
	defer replies.Unsubscribe()
	heartbeat(b, nc, "w-sink", 1)
	waitState(b, d, up("w-sink"))

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	b.ResetTimer()
	for round := range b.N {
		for i := range pending {
			m := nats.NewMsg("calc.request")
			m.Reply = fmt.Sprintf("_INBOX.sink.%d", i)
			m.Header.Set(wire.HdrRequestID, uuid.NewString())
			m.Header.Set(wire.HdrClient, "bench")
			m.Data = []byte("sleep 1000")
			if err := nc.PublishMsg(m); err != nil {
				b.Fatal(err)
			}
		}
		want := int64((round + 1) * pending)
		testutil.CheckFor(b, 30*time.Second, 5*time.Millisecond, func() error {
			if n := d.Stats().Inflight; n != want {
				return fmt.Errorf("in flight = %d; want %d", n, want)
			}
			// Nothing of it left in transit, only what the dispatcher holds.
			if n := sunk.Load(); n != want {
				return fmt.Errorf("worker got %d; want %d", n, want)
			}
			return nil
		})
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(int64(ms.HeapAlloc)-int64(before))/float64(b.N*pending), "B/pending")
	// Answer the requests now rather than wait out their deadlines.
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_ = d.Shutdown(ctx)
}
