package dispatcher

import (
	"testing"
	"time"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// TestSnapshotShowsSilent: a worker up by its heartbeats that the
// dispatcher found silent (it sends it nothing new) says so in its status
// row, until it is heard again.
func TestSnapshotShowsSilent(t *testing.T) {
	d := &Dispatcher{mem: newMembership(3*time.Second, OutlierConfig{})}
	d.pick, _ = newPicker(RoundRobin, nil)
	d.inflight.core = flight.New(flight.Config{MaxAttempts: 1, MuteFor: time.Hour}, newPool(d))
	now := time.Now()
	beat(d.mem, now, hb("w-a", 1, wire.StateUp))
	w := d.mem.Live()[0]
	step := func(ev flight.Event) { d.inflight.core.Step(ev, nil) }
	silent := func() bool { return d.markSilent(d.mem.Snapshot())[0].Silent }
	at := func(ms int64) int64 { return now.UnixNano() + ms*int64(time.Millisecond) }
	step(flight.Event{Kind: flight.EvWorkerUp, Now: at(0), W: workerOf(w), Every: 100 * time.Millisecond})
	r := &flight.Request{ID: "r", Reply: "_INBOX.r", Timeout: time.Hour}
	step(flight.Event{Kind: flight.EvRequest, Now: at(0), Req: r})
	if silent() {
		t.Fatal("Silent before anything; want false")
	}
	step(flight.Event{Kind: flight.EvTick, Now: at(400)}) // nothing about anything for 4 intervals
	if row := d.markSilent(d.mem.Snapshot())[0]; !row.Silent || row.State != wire.StateUp {
		t.Fatalf("row of a muted worker = %+v; want up and silent", row)
	}
	step(flight.Event{Kind: flight.EvProgress, Now: at(450), Worker: "w-a", IDs: []string{"r"}})
	if silent() {
		t.Fatal("Silent after the worker was heard; want false")
	}
}
