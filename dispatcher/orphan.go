package dispatcher

import (
	"bytes"
	"strconv"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// Orphans are replies a worker handed over on its wire.HandOver subject
// because the dispatcher that forwarded their request is gone
// (calcworker/orphan.go): its inbox had no responders, or it did not
// acknowledge the reply (ack). Every dispatcher receives them
// (wire.HandOvers). One that holds the request, because its client's
// resend reached it first, answers with the orphan at once and tells the
// workers it sent the resend to that it is over. Otherwise it keeps the
// orphan a while, and answers the client's resend with it when the resend
// comes, without forwarding it: the job ran once. The core decides
// (flight.Core, EvOrphan) and keeps them (flight/orphans.go).
//
// Only a request whose client chose its id (keyed) is answered so, and
// only a request to the reply subject the forward named in
// Calc-Client-Reply (Event.Client): a hand-over answers its own client
// alone. It comes on the subject of the worker its Calc-Worker names (the
// broker holds a worker's credential to its own), and names the request
// by its id and its client's reply subject, both drawn at random and seen
// only by dispatchers and the workers the request was forwarded to: a
// worker that forges one reaches no request that was not forwarded to
// it. A 500 or 503 is not kept: another worker may do better, and the
// resend finds one.

// onOrphan takes a reply a worker handed over. What the core may keep is
// a copy of the payload alone, not the buffer it came in; one with no
// payload, headers beyond their bounds, no Calc-Client-Reply, or a
// Calc-Worker other than the worker of its subject is refused (Size 0).
func (d *Dispatcher) onOrphan(m *nats.Msg) {
	d.run(orphanEvent(m, len(d.subj.HandOver("")), time.Now().UnixNano()))
}

// orphanEvent is the core's event for m, handed over at now on a
// wire.HandOver subject whose worker id starts at byte at.
func orphanEvent(m *nats.Msg, at int, now int64) flight.Event {
	ev := flight.Event{Kind: flight.EvOrphan, Now: now, Code: replyCode(m.Header)}
	if m.Header != nil {
		ev.ID, ev.Worker, ev.Client = m.Header.Get(wire.HdrRequestID), m.Header.Get(wire.HdrWorker), m.Header.Get(wire.HdrClientReply)
	}
	from := ""
	if at <= len(m.Subject) {
		from = m.Subject[at:]
	}
	if len(m.Data) > 0 && ev.ID != "" && len(ev.ID) <= wire.MaxRequestIDLen && wire.CheckRequestHeaders(m.Header) == nil &&
		ev.Client != "" && ev.Worker != "" && ev.Worker == from {
		kept := &nats.Msg{Header: m.Header, Data: bytes.Clone(m.Data)}
		ev.Payload, ev.Size = kept, orphanCost(ev.ID, kept)
	}
	return ev
}

// orphanCost is what keeping m, a reply handed over for request id,
// costs the dispatcher: its payload, headers and message (the core adds
// its own share, flight.Config.OrphanBytes).
func orphanCost(id string, m *nats.Msg) int {
	return int(unsafe.Sizeof(nats.Msg{})) + len(id) + cap(m.Data) + int(headerCost(m.Header))
}

// replyCode is a reply's error code, 0 for a result.
func replyCode(h nats.Header) int {
	if h == nil {
		return 0
	}
	code := 0
	if v := h.Get(wire.HdrErrorCode); v != "" {
		code, _ = strconv.Atoi(v)
	}
	return code
}
