package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/wire"
)

// TestThousandWorkers: with a fleet of 1,000 workers (their heartbeats
// published on the bus, as workers do) a page's first frame carries the
// table once and later frames only the rows that changed; MaxRows bounds
// the rows sent.
func TestThousandWorkers(t *testing.T) {
	const n = 1000
	url := brokertest.Run(t).ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	d, err := dispatcher.New(dispatcher.Config{Conn: nc, ID: "d1", Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	}()

	pub, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	subj := wire.Subjects{}
	started := time.Now()
	beat := func(seq uint64) {
		for i := range n {
			id := fmt.Sprintf("w-%04d", i)
			b, _ := json.Marshal(wire.Heartbeat{ID: id, State: wire.StateUp, Seq: seq, IntervalMS: 1000,
				Concurrency: 16, StartedAt: started, Version: wire.Version})
			_ = pub.Publish(subj.Heartbeat(id), b)
		}
		_ = pub.Flush()
	}
	// Heartbeats every 500 ms until the test ends: the fleet stays up.
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for seq := uint64(1); ; seq++ {
			beat(seq)
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	defer wg.Wait()
	defer close(quit)

	dash, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: d, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	small, err := Start(Config{Addr: "127.0.0.1:0", Dispatcher: d, Interval: 100 * time.Millisecond, MaxRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()

	// Wait for the whole fleet, then watch a fresh page.
	deadline := time.Now().Add(20 * time.Second)
	for d.Status().Counts[wire.StateUp] < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers up; want %d", d.Status().Counts[wire.StateUp], n)
		}
		time.Sleep(20 * time.Millisecond) // polling pace
	}
	frames, sizes := rawStream(t, dash.URL())
	first := <-frames
	if !first.Full || len(first.Rows) != n || first.Dispatcher.Total != n {
		t.Fatalf("first frame: full %v, %d rows, total %d; want the %d rows", first.Full, len(first.Rows), first.Dispatcher.Total, n)
	}
	full := <-sizes
	if full > 150<<10 {
		t.Errorf("the full frame of %d rows is %d bytes; want at most 150 KiB", n, full)
	}
	// Between two rounds of heartbeats nothing changes: some frames
	// carry no row at all, and none carries more than the table.
	empty, most := 0, 0
	for range 20 {
		f, size := <-frames, <-sizes
		if f.Full || len(f.Rows) > n {
			t.Fatalf("an update: full %v, %d rows; want a delta of at most %d", f.Full, len(f.Rows), n)
		}
		if len(f.Rows) == 0 {
			empty++
		}
		most = max(most, size)
	}
	if empty == 0 {
		t.Error("every update carried rows, though heartbeats come every 500 ms and updates every 100 ms")
	}
	t.Logf("%d workers: the full frame is %d bytes, the largest of 20 updates %d bytes, %d of them without rows", n, full, most, empty)

	f := <-stream(t, small.URL())
	if len(f.Rows) != 300 || f.Dispatcher.Total != n {
		t.Errorf("MaxRows 300: %d rows of %d; want 300 of %d", len(f.Rows), f.Dispatcher.Total, n)
	}
}
