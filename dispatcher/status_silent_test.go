package dispatcher

import (
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// TestSnapshotShowsSilent: a worker up by its heartbeats that the
// dispatcher found silent (it sends it nothing new) says so in its status
// row, until it is heard again.
func TestSnapshotShowsSilent(t *testing.T) {
	m := newMembership(3*time.Second, OutlierConfig{})
	now := time.Now()
	beat(m, now, hb("w-a", 1, wire.StateUp))
	w := m.Live()[0]
	silent := func() bool { return m.Snapshot()[0].Silent }
	if silent() {
		t.Fatal("Silent before anything; want false")
	}
	w.sign.muteUntil.Store(now.Add(time.Hour).UnixNano())
	if row := m.Snapshot()[0]; !row.Silent || row.State != wire.StateUp {
		t.Fatalf("row of a muted worker = %+v; want up and silent", row)
	}
	w.sign.hear(now.UnixNano())
	if silent() {
		t.Fatal("Silent after the worker was heard; want false")
	}
}
