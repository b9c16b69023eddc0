package e2e

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/testutil"
)

// TestEndToEndPartitionLosesNothing cuts off, for 3 s, the broker that
// every worker and one of the two dispatchers are connected to
// (SIGSTOP, then SIGCONT: its connections stay open but nothing moves, as
// when a node leaves the network), under a steady load from a client on
// a third broker. Brokers ping every 500ms, so the others drop their
// routes to it, and what those held, before it comes back. The other
// dispatcher loses every worker at once and holds its requests until
// they are back; the client resends what went to the broker cut off. Every
// request must get its right answer.
func TestEndToEndPartitionLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of load")
	}
	e := newEnv(t)
	ping := "--ping-interval=500ms"
	b1 := e.broker("b1", "--cluster-port=-1", "--name=b1", ping)
	b2 := e.broker("b2", "--cluster-port=-1", "--name=b2", "--routes="+b1.RouteURL, ping)
	b3 := e.broker("b3", "--cluster-port=-1", "--name=b3", "--routes="+b1.RouteURL, ping)
	d1 := e.dispatcher(b2.URL, "d1", "--hold-for=5s")
	e.dispatcher(b3.URL, "d2", "--hold-for=5s")
	for _, id := range []string{"w1", "w2"} {
		e.worker(b3.URL, id)
	}
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		st, err := e.status(b1.URL)
		if err != nil {
			return err
		}
		return upWorkers(st, 2, "w1", "w2")
	})
	c, err := client.Connect(client.Config{URL: b1.URL, Name: "e2e-partition", Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)

	const rate, total = 50, 400 // 8 s
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []string
		resent int
	)
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := range total {
		<-tick.C
		switch i {
		case rate: // 1 s in
			b3.signal(t, syscall.SIGSTOP)
			t.Cleanup(func() { b3.signal(t, syscall.SIGCONT) })
		case 4 * rate:
			b3.signal(t, syscall.SIGCONT)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.Do(context.Background(), "add 2 3")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failed = append(failed, err.Error())
			case r.ResultString() != "5":
				failed = append(failed, "add 2 3 = "+r.ResultString())
			case r.Sends > 1:
				resent++
			}
		}()
	}
	wg.Wait()
	held := strings.Count(readFile(d1.log), "forwarding held requests")
	t.Logf("%d requests, %d failed, %d resent by the client; d1 forwarded held requests %d times", total, len(failed), resent, held)
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed across the partition; first: %s", len(failed), total, failed[0])
	}
}
