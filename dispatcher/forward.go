package dispatcher

import (
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// The hot path: a client request comes in (onRequest), goes to a worker
// (actions.go), and the worker's reply goes back to the client (onReply).
// Each is one event for the core, under its lock; the actions are
// published without it.

// onRequest takes a client request and forwards it.
func (d *Dispatcher) onRequest(m *nats.Msg) {
	if m.Reply == "" {
		return // nobody to answer; computing it would be wasted
	}
	if !d.replyOK(respRequest, m.Reply) {
		return // no forward: its reply could go nowhere else
	}
	now := time.Now()
	r := newRequest(m.Reply, m.Data, now)
	progress, hedge := false, time.Duration(0)
	if h := m.Header; h != nil {
		var v [len(ourHeaders)]string
		if ourHeaderValues(h, &v) {
			r.hdr = h // forwarded as they came
		}
		r.id, r.client, r.timeout = v[0], v[1], v[2]
		progress = v[3] != ""
		if e := checkHeaders(r, &v); e != nil { // limits.go
			d.fail(r, e)
			return
		}
		hedge = wire.Millis(v[4], d.cfg.MaxRequestTimeout)
	}
	keyed := r.id != ""
	if r.id == "" {
		// A request from a plain NATS client: give it an id, for the log
		// and for the worker to echo.
		r.id = nuid.Next()
		if r.hdr != nil {
			r.hdr.Set(wire.HdrRequestID, r.id)
		}
	}
	timeout := d.cfg.RequestTimeout
	if t := wire.Millis(r.timeout, d.cfg.MaxRequestTimeout); t > 0 {
		timeout = t // clamped: a huge value is the cap, not an overflow
	}
	r.fr.Cost = requestCost(r)
	if d.cfg.MaxClientInflight > 0 {
		r.fr.Share = shareKey(r)
	}
	r.fr.ID, r.fr.Client, r.fr.Keyed, r.fr.Progress, r.fr.Hedge, r.fr.Timeout = r.id, r.client, keyed, progress, hedge, timeout
	d.run(flight.Event{Kind: flight.EvRequest, Now: now.UnixNano(), Req: &r.fr})
}

// onReply turns a worker's message on the dispatcher's inbox into an
// event: a reply, a progress message, or the broker's "no responders".
func (d *Dispatcher) onReply(m *nats.Msg) {
	rest := m.Subject[len(d.inflight.inbox):]
	ev := flight.Event{Kind: flight.EvReply, Worker: rest}
	if t, ok := strings.CutPrefix(rest, "t."); ok {
		var err error
		if ev.Token, err = strconv.ParseUint(t, 36, 64); err != nil || ev.Token == 0 {
			return
		}
		ev.Worker = ""
	}
	ev.Now = time.Now().UnixNano()
	switch {
	case natsutil.IsNoResponders(m):
		ev.Kind = flight.EvNoResponders // no request id in the broker's status on a shared subject
	case m.Header != nil && m.Header[wire.HdrProgress] != nil && len(m.Data) == 0:
		// A worker still on it: its request ids, or the token, say which.
		ev.Kind, ev.IDs = flight.EvProgress, m.Header[wire.HdrRequestID]
	default:
		// A long job's reply (m.Reply set): its worker hands it over to
		// the other dispatchers unless told that this one took it
		// (orphan.go).
		ev.ID, ev.Code, ev.Payload, ev.AckTo = m.Header.Get(wire.HdrRequestID), replyCode(m.Header), m, m.Reply
	}
	d.run(ev)
}
