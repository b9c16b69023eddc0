package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// TestDashboardThousandWorkers: the page keeps up with a fleet of 1,000
// workers (their heartbeats published by the test, as workers do): every
// row is there, a frame applies in a fraction of the update interval, and
// the filter finds a worker.
func TestDashboardThousandWorkers(t *testing.T) {
	const n = 1000
	path := chromium(t)
	e := newEnv(t)
	b := e.broker("broker")
	d := e.dispatcher(b.URL, "d-fleet", "--http", "127.0.0.1:0", "--heartbeat", "1s", "--log-requests=false")
	url := dashboardURL(t, d)

	nc, err := nats.Connect(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	started := time.Now()
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // heartbeats every 500 ms until the test ends
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			for i := range n {
				id := fmt.Sprintf("w-%04d", i)
				hb, _ := json.Marshal(wire.Heartbeat{ID: id, State: wire.StateUp, Seq: seq, IntervalMS: 1000,
					Served: seq * uint64(i%7), Concurrency: 16, StartedAt: started, Version: wire.Version})
				_ = nc.Publish(wire.Subjects{}.Heartbeat(id), hb)
			}
			_ = nc.Flush()
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	defer wg.Wait()
	defer close(quit)

	tab := browser(t, path)
	nav, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(nav, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	waitPage(t, tab, fmt.Sprintf("%d workers up", n), func(rows map[string]rowView) error {
		up := 0
		for _, r := range rows {
			if r.State == "up" {
				up++
			}
		}
		if up != n {
			return fmt.Errorf("%d up of %d rows", up, len(rows))
		}
		return nil
	})

	// Ten more frames, each with a thousand changed rows.
	type cost struct {
		Frames int     `json:"frames"`
		LastMs float64 `json:"lastMs"`
		MaxMs  float64 `json:"maxMs"`
	}
	var c cost
	read := func() cost {
		ctx, cancel := context.WithTimeout(tab, 10*time.Second)
		defer cancel()
		c, err := chromedp.Run(ctx, chromedp.Evaluate[cost](`window.bilancia`))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	from := read().Frames
	deadline := time.Now().Add(60 * time.Second)
	for c = read(); c.Frames < from+10; c = read() {
		if time.Now().After(deadline) {
			t.Fatalf("the page applied %d frames in a minute; want 10", c.Frames-from)
		}
		time.Sleep(200 * time.Millisecond) // polling pace
	}
	t.Logf("%d workers: the slowest of %d frames took %.1f ms to apply, the last %.1f ms", n, c.Frames-1, c.MaxMs, c.LastMs)
	// How long a frame takes is a measurement (BENCHMARKS.md), not a test:
	// what must hold is that the page keeps applying frames, above.

	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#filter"), "w-099")); err != nil {
		t.Fatal(err)
	}
	visible, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#worker-rows .row:not([hidden])").length`))
	if err != nil {
		t.Fatal(err)
	}
	if visible != 10 {
		t.Errorf("filter w-099: %d rows visible; want 10 (w-0990 to w-0999)", visible)
	}
}
