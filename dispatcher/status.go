package dispatcher

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// guard holds what keeps messages from anyone on the bus from costing the
// dispatcher more than their share: rate limits on the warnings they
// cause, and the status reply's cache.
type guard struct {
	warn    warnLimits
	status  statusCache
	refused refusals // replies.go
}

// statusCache keeps the last status reply for statusCacheFactor × the time
// its encoding took: a table of thousands of workers takes milliseconds
// to encode, and a flood of status requests then costs at most about
// 1/statusCacheFactor of a core, while a small table's reply is fresh.
type statusCache struct {
	mu    sync.Mutex
	st    wire.Status // the whole table, rows sorted by id
	b     []byte      // st encoded for the connection's max payload
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
		Drained: d.mem.Drained(),
	}
}

// maxStatusRequest bounds a status request's payload worth reading.
const maxStatusRequest = 4096

// onStatus answers a status request with the table cut to fit the
// connection's max payload (wire.EncodeStatus), or with the rows of the
// workers a wire.StatusRequest names.
func (d *Dispatcher) onStatus(m *nats.Msg) {
	if m.Reply == "" || !d.replyOK(respStatus, m.Reply) {
		return // an answer of up to a max payload goes to an inbox or nowhere
	}
	var req wire.StatusRequest
	if len(m.Data) > 0 && len(m.Data) <= maxStatusRequest {
		_ = json.Unmarshal(m.Data, &req) // anything else asks for the whole table
	}
	start := time.Now()
	_ = m.Respond(d.statusReply(start, req.Workers))
	d.served.status.add(start, false)
}

// statusReply encodes the status for ids, or for the whole table when
// ids is empty, from a cached snapshot of the table.
func (d *Dispatcher) statusReply(now time.Time, ids []string) []byte {
	c := &d.guard.status
	c.mu.Lock()
	defer c.mu.Unlock()
	max := int(d.nc.MaxPayload())
	if !now.Before(c.until) {
		c.st = d.Status()
		c.b = wire.EncodeStatus(c.st, max)
		c.until = now.Add(statusCacheFactor * time.Since(now))
	}
	if len(ids) == 0 {
		return c.b
	}
	st := c.st
	st.Workers = make([]wire.WorkerStatus, 0, len(ids))
	for _, id := range ids {
		i, ok := slices.BinarySearchFunc(c.st.Workers, id, func(w wire.WorkerStatus, id string) int { return strings.Compare(w.ID, id) })
		if ok {
			st.Workers = append(st.Workers, c.st.Workers[i])
		}
	}
	return wire.EncodeStatus(st, max) // with the table's total and counts
}
