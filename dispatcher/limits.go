package dispatcher

import (
	"strings"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// Bounds on what a request may make the dispatcher keep: its headers
// (wire.CheckRequestHeaders), and the bytes of all requests in flight
// (Config.MaxInflightBytes), each request's real cost counted here and
// held against the bound by the core (flight.Config.MaxInflightBytes).

// requestOverhead is what a request in flight costs beyond its strings
// and payload: the request itself, its entries in the table's maps and
// its timers.
const requestOverhead = int64(unsafe.Sizeof(request{})) + 256

// headerCost is what a kept header map h costs: the map (its header, and
// a slot of key and slice header for each name, in groups of eight), the
// names, and each value's string header and bytes.
func headerCost(h nats.Header) int64 {
	if h == nil {
		return 0
	}
	n := int64(48 + 48*max(len(h), 8))
	for k, vs := range h {
		n += int64(len(k))
		for _, v := range vs {
			n += 16 + int64(len(v))
		}
	}
	return n
}

// requestCost is what r costs while in flight.
func requestCost(r *request) int64 {
	n := requestOverhead + int64(len(r.reply)+cap(r.data))
	if r.hdr != nil {
		return n + headerCost(r.hdr)
	}
	return n + int64(len(r.id)+len(r.client)+len(r.timeout))
}

// checkHeaders tells whether a request's headers are within their bounds:
// with hdr, the client's whole map, kept as it came; else v, the values
// of ours, the only headers it sent. A request beyond them is answered 400
// and goes no further; a request id too long to echo is not echoed.
func checkHeaders(r *request, v *[len(ourHeaders)]string) *wire.Error {
	var err error
	if r.hdr != nil {
		err = wire.CheckRequestHeaders(r.hdr)
	} else {
		for i, k := range ourHeaders {
			if err = wire.CheckHeader(k, v[i]); err != nil {
				break
			}
		}
	}
	if err == nil {
		return nil
	}
	if len(r.id) > wire.MaxRequestIDLen {
		r.id = ""
	}
	return wire.NewError(wire.CodeBadRequest, err.Error())
}

// shareKey is who r counts against for Config.MaxClientInflight (the
// core holds the count, flight.Request.Share): under broker --auth, the
// client credential whose inbox its reply subject is under
// ("_INBOX_CLIENT.<name>"); else its Calc-Client; else the reply subject
// less its last token (a client library's inbox for its requests, one per
// connection).
func shareKey(r *request) string {
	if rest, ok := strings.CutPrefix(r.reply, wire.ClientInboxRoot+"."); ok {
		if i := strings.IndexByte(rest, '.'); i > 0 {
			return r.reply[:len(wire.ClientInboxRoot)+1+i]
		}
	}
	if r.client != "" {
		return "client " + r.client
	}
	if i := strings.LastIndexByte(r.reply, '.'); i > 0 {
		return r.reply[:i]
	}
	return r.reply
}

// sideBacklog and sideBacklogMsgs bound what waits in each subscription
// that anyone may flood and that no request waits on (hand-overs, status
// requests, hellos); beyond them the client library drops messages as a
// slow consumer's, where the request subscriptions buffer bursts. Bytes
// alone would not do: the library counts a message's payload and headers,
// not the decoded message it keeps, several times larger for small ones.
const (
	sideBacklog     = 8 << 20
	sideBacklogMsgs = 4096
)

// limitSideBacklogs applies sideBacklog; Start calls it once subscribed.
func (d *Dispatcher) limitSideBacklogs() {
	for _, s := range []subscription{d.subs.orphans, d.subs.status, d.subs.connect, d.subs.disconnect} {
		if s.Subscription != nil {
			_ = s.SetPendingLimits(sideBacklogMsgs, sideBacklog)
		}
	}
}
