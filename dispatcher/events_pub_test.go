package dispatcher_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/broker/brokertest"
	"github.com/bilancia/bilancia/dispatcher"
	"github.com/bilancia/bilancia/wire"
)

// TestEventsPublished: a dispatcher's start and stop, a worker's
// transitions and an operator's drain and resume appear on
// calc.events.>, each subject's last token the payload's kind.
func TestEventsPublished(t *testing.T) {
	url := brokertest.Run(t).ClientURL()
	nc := connect(t, url)
	sub, err := nc.SubscribeSync("calc.events.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Each event is awaited before the next action: a worker is up in
	// the table a moment before its event is queued.
	next := func(subj string) {
		t.Helper()
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", subj, err)
		}
		var ev wire.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatalf("%s: %v", m.Subject, err)
		}
		if m.Subject != subj || ev.Kind != subj[strings.LastIndexByte(subj, '.')+1:] || ev.Dispatcher != "d-ev" || ev.Time.IsZero() {
			t.Fatalf("event %s %s; want %s", m.Subject, m.Data, subj)
		}
		if strings.Contains(subj, ".worker.") && ev.Worker != "w-ev" {
			t.Fatalf("event %s names worker %q", m.Data, ev.Worker)
		}
	}
	d := startDispatcher(t, url, func(c *dispatcher.Config) { c.ID = "d-ev" })
	next("calc.events.dispatcher.d-ev.start")
	w := startWorker(t, url, "w-ev", nil)
	waitState(t, d, up("w-ev"))
	next("calc.events.worker.w-ev.up")
	if err := d.Drain("w-ev"); err != nil {
		t.Fatal(err)
	}
	next("calc.events.worker.w-ev.drained")
	if err := d.Resume("w-ev"); err != nil {
		t.Fatal(err)
	}
	next("calc.events.worker.w-ev.resumed")
	if err := w.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, d, map[string]string{"w-ev": wire.StateDown})
	next("calc.events.worker.w-ev.draining")
	next("calc.events.worker.w-ev.down")
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	next("calc.events.dispatcher.d-ev.stop")
}
