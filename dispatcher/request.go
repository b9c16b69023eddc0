package dispatcher

import (
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dispatcher/flight"
)

// request is one client request in flight: what the shell needs to
// forward and answer it, beside its life in the core (fr, whose states
// and transitions are in flight/states.go). The fields are set when it
// arrives and never change; fr belongs to the core, under Dispatcher.mu.
type request struct {
	reply   string      // the client's inbox
	hdr     nats.Header // the client's headers, kept only if it sent others than ours
	data    []byte
	id      string
	client  string
	timeout string // Calc-Timeout-Ms as sent
	start   time.Time

	fr flight.Request
}

// newRequest returns a request for reply that arrived at now.
func newRequest(reply string, data []byte, now time.Time) *request {
	r := &request{reply: reply, data: data, start: now}
	r.fr.Reply = reply
	r.fr.Ref = r
	return r
}

// reqOf is the shell's request of the core's.
func reqOf(fr *flight.Request) *request { return fr.Ref.(*request) }

// tried is how many workers r went to, and the last of them ("" for
// none); r is done.
func (r *request) tried() (int, string) {
	ws := r.fr.Tried()
	if len(ws) == 0 {
		return 0, ""
	}
	return len(ws), ws[len(ws)-1].ID
}
