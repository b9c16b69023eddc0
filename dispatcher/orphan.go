package dispatcher

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// Orphans are replies a worker handed over on wire.Orphan because the
// dispatcher that forwarded their request is gone (calcworker/orphan.go):
// its inbox had no responders, or it did not acknowledge the reply (ack).
// Every dispatcher receives them. One that holds the request, because
// its client's resend reached it first, answers with the orphan at once
// and tells the workers it sent the resend to that it is over. Otherwise
// it keeps the orphan a while, and answers the client's resend with it
// when the resend comes, without forwarding it: the job ran once. The
// core decides (flight.Core, EvOrphan) and keeps them (flight/orphans.go).
//
// Only a request whose client chose its id (keyed) is answered so. The
// orphan names the request by id alone; a client draws its ids at random
// and only dispatchers and workers see them, so a party that can publish
// on wire.Orphan reaches no client that has not asked for that very id.
// A 500 or 503 is not kept: another worker may do better, and the resend
// finds one.

// onOrphan takes a reply a worker handed over.
func (d *Dispatcher) onOrphan(m *nats.Msg) {
	ev := flight.Event{Kind: flight.EvOrphan, Now: time.Now().UnixNano(), Payload: m,
		Code: replyCode(m.Header), Size: orphanSize(m)}
	if m.Header != nil {
		ev.ID, ev.Worker = m.Header.Get(wire.HdrRequestID), m.Header.Get(wire.HdrWorker)
	}
	if len(m.Data) == 0 {
		ev.Size = 0 // no reply in it: refused
	}
	d.run(ev)
}

// orphanSize is what keeping m costs: its payload and headers.
func orphanSize(m *nats.Msg) int {
	n := len(m.Data)
	for k, vs := range m.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v)
		}
	}
	return n
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
