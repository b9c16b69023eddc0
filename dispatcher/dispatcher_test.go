package dispatcher_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStatusOverNATS(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, nil)
	startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	cl := newClient(t, url, nil)
	st, err := cl.Status(context.Background(), 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].Dispatcher != "d-test" || len(st[0].Workers) != 1 || st[0].Workers[0].ID != "w-a" {
		t.Fatalf("status = %+v; want d-test with w-a", st)
	}
}

func TestShutdownIdempotent(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.LogRequests = true })
	w := startWorker(t, url, "w-a", nil)
	waitState(t, d, up("w-a"))
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(2)
		go func() { defer wg.Done(); _ = d.Shutdown(context.Background()) }()
		go func() { defer wg.Done(); _ = w.Shutdown(context.Background()) }()
	}
	wg.Wait()
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown again: %v", err)
	}
}

// A dispatcher on a subject of its own serves there, beside one on the
// usual subject, on the same workers; each answers only its own clients.
func TestDispatcherOnItsOwnSubject(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	usual := startDispatcher(t, url, nil)
	other := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID, c.Subject = "d-other", "calc.canary" })
	startWorker(t, url, "w-a", nil)
	waitState(t, usual, up("w-a"))
	waitState(t, other, up("w-a"))
	for subj, want := range map[string]string{"calc.request": "d-test", "calc.canary": "d-other"} {
		cl := newClient(t, url, func(c *client.Config) { c.Subject = subj })
		for range 4 {
			res, err := cl.Do(context.Background(), "add 2 3")
			if err != nil || res.Dispatcher != want || res.ResultString() != "5" {
				t.Fatalf("on %s: %+v, %v; want 5 from %s", subj, res, err, want)
			}
		}
	}
	st := other.Status()
	if st.Subject != "calc.canary" || st.Served != 4 {
		t.Errorf("status subject %q, served %d; want calc.canary, 4", st.Subject, st.Served)
	}
	for _, bad := range []string{"calc.>", "calc.*.x", "calc..x", ".calc", "calc request", ""} {
		nc := connect(t, url)
		_, err := dispatcher.New(dispatcher.Config{Conn: nc, Subject: bad})
		if (err == nil) != (bad == "") {
			t.Errorf("New with subject %q: %v", bad, err)
		}
	}
}
