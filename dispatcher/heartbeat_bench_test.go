package dispatcher

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// BenchmarkHeartbeatFleet measures what one heartbeat costs the
// dispatcher's heartbeat callback, decoding to table, with a fleet of
// 1,000 workers heartbeating in turn: at one heartbeat per worker per
// second, ns/op × 1,000 is its share of a core.
func BenchmarkHeartbeatFleet(b *testing.B) {
	d, err := New(Config{Conn: new(nats.Conn), DeadAfter: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	started := time.Now().UTC()
	msgs := make([]*nats.Msg, 1000)
	for i := range msgs {
		id := fmt.Sprintf("w-%04d", i)
		data, _ := json.Marshal(wire.Heartbeat{ID: id, Subject: "calc.worker." + id, State: wire.StateUp, Seq: 1,
			IntervalMS: 1000, Concurrency: 2, StartedAt: started, Version: wire.Version, Host: "vm"})
		msgs[i] = &nats.Msg{Subject: "calc.heartbeat." + id, Data: data}
	}
	for _, m := range msgs {
		d.onHeartbeat(m)
	}
	if n := d.LiveWorkers(); n != len(msgs) {
		b.Fatalf("%d workers live; want %d", n, len(msgs))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.onHeartbeat(msgs[i%len(msgs)])
	}
}
