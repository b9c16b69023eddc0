package dispatcher

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// Membership events: what the workers' heartbeats and disappearances do
// to the requests in flight, and the log lines they make.

// changes logs membership changes and re-dispatches the requests waiting
// on a worker that went down, instead of waiting for their timeouts.
func (d *Dispatcher) changes(cs []change) {
	for _, c := range cs {
		attrs := []any{"worker", c.ID, "from", c.From, "to", c.To, "reason", c.Reason}
		if !c.Until.IsZero() {
			attrs = append(attrs, "until", c.Until)
		}
		d.log.Info("worker "+c.To, attrs...)
		if c.To == wire.StateDown {
			d.redispatch(c.ID)
		}
	}
}

// workerGone handles "no responders" for a forward to a worker: it has no
// subscription left, so it goes down, without waiting for its heartbeats
// to stop, and every request waiting on it goes on to the next worker at
// once. On the worker's shared reply subject the broker's status reply
// carries no request id, so which forward found no subscriber is not known;
// all are sent on, their attempts left open, since a draining worker still
// answers what it holds.
func (d *Dispatcher) workerGone(workerID string) {
	var cs []change
	if w := d.mem.Get(workerID); w != nil {
		cs = d.mem.MarkDown(w, "no responders")
	}
	if len(cs) > 0 {
		d.changes(cs) // a worker going down is re-dispatched there
		return
	}
	// Already down (tried as a suspect): nothing re-dispatched it yet.
	d.redispatch(workerID)
}

// redispatch sends the requests waiting on a worker that went down to the
// next worker; their attempts there stay open.
func (d *Dispatcher) redispatch(workerID string) {
	reqs := d.inflight.goneFrom(workerID)
	now := time.Now()
	for _, r := range reqs {
		d.stats.redispatched.Add(1)
		d.forward(r, now)
	}
}

func (d *Dispatcher) onHeartbeat(m *nats.Msg) {
	hb, err := wire.DecodeHeartbeat(m.Data)
	if err == nil && !wire.ValidID(hb.ID) {
		err = fmt.Errorf("worker id %q is not a subject token of up to 64 printable characters", hb.ID)
	}
	if err != nil {
		d.log.Warn("bad heartbeat", "subject", m.Subject, "error", err.Error())
		return
	}
	if hb.Subject == "" {
		hb.Subject = d.subj.Worker(hb.ID)
	}
	d.changes(d.mem.Heartbeat(time.Now(), hb))
}

func (d *Dispatcher) onClient(m *nats.Msg) {
	var h wire.ClientHello
	if err := json.Unmarshal(m.Data, &h); err != nil {
		return
	}
	msg := "client connected"
	if m.Subject == d.subj.ClientDisconnect() {
		msg = "client disconnected"
	}
	d.log.Info(msg, "client", h.Name, "host", h.Host, "ip", h.IP, "pid", h.PID, "nats_client_id", h.ClientID)
}
