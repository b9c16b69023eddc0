package dispatcher_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
)

// benchSetup starts a broker, 3 workers (also on the direct queue-group
// subject) and a dispatcher with request logging on, all in-process.
func benchSetup(b *testing.B) (url string) {
	url = broker.RunTestServer(b).ClientURL()
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
