package dispatcher

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// guard holds what keeps messages from anyone on the bus from costing the
// dispatcher more than their share: rate limits on the warnings they
// cause, and the status reply's cache.
type guard struct {
	warn   warnLimits
	status statusCache
}

// statusCache keeps the last status reply for statusCacheFactor × the time
// its encoding took: a table of thousands of workers takes milliseconds
// to encode, and a flood of status requests then costs at most about
// 1/statusCacheFactor of a core, while a small table's reply is fresh.
type statusCache struct {
	mu    sync.Mutex
	b     []byte
	until time.Time
}

const statusCacheFactor = 10

// Status is the dispatcher's view, as answered on the status subject,
// with every row of its table.
func (d *Dispatcher) Status() wire.Status {
	st := d.Stats()
	ws := d.mem.Snapshot()
	counts := make(map[string]int, 4)
	for _, w := range ws {
		counts[w.State]++
	}
	return wire.Status{
		Dispatcher: d.cfg.ID, Version: wire.Version, StartedAt: d.start,
		Inflight: st.Inflight, Served: st.Served, Failed: st.Failed,
		Strategy: d.cfg.Strategy, Subject: d.cfg.Subject, Total: len(ws), Counts: counts, Workers: ws,
	}
}

// onStatus answers a status request with the table cut to fit the
// connection's max payload (wire.EncodeStatus).
func (d *Dispatcher) onStatus(m *nats.Msg) {
	_ = m.Respond(d.statusReply(time.Now()))
}

func (d *Dispatcher) statusReply(now time.Time) []byte {
	c := &d.guard.status
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(c.until) {
		return c.b
	}
	c.b = wire.EncodeStatus(d.Status(), int(d.nc.MaxPayload()))
	c.until = now.Add(statusCacheFactor * time.Since(now))
	return c.b
}
