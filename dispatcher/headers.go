package dispatcher

import (
	"maps"
	"strconv"
	"sync"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// The client's headers are forwarded as they came, but for two that every
// forward carries: Calc-Timeout-Ms, the time left until the request's
// deadline, and Calc-Progress: 1, since the dispatcher wants to hear that
// the worker is still on it. When the client's headers are just the ones
// a client sets, the request keeps their values, not the header map
// nats.go decoded, which would be most of what a pending request holds,
// and each forward encodes them from a pooled map instead.
var ourHeaders = [...]string{wire.HdrRequestID, wire.HdrClient, wire.HdrTimeout, wire.HdrProgress, wire.HdrHedge, wire.HdrClientReply}

// progressValue is Calc-Progress's value on a forward; shared, since
// nats.go only reads it.
var progressValue = []string{"1"}

// ourHeaderValues reads the first value of each of ourHeaders into v, in
// their order, and tells whether h holds headers beyond ours, or several
// values for one of them.
func ourHeaderValues(h nats.Header, v *[len(ourHeaders)]string) (others bool) {
	n := 0
	for i, k := range ourHeaders {
		vs := h[k]
		if len(vs) > 0 {
			v[i] = vs[0]
			n++
		}
		others = others || len(vs) > 1
	}
	return others || len(h) > n
}

// fwdHeader is a pooled header map for a forward, with room for one value
// of each of ourHeaders and the digits of the time left, so that filling
// it allocates nothing.
type fwdHeader struct {
	h      nats.Header
	vals   [len(ourHeaders)][1]string
	digits [20]byte
}

var fwdHeaders = sync.Pool{New: func() any { return &fwdHeader{h: make(nats.Header, len(ourHeaders))} }}

// newFwdHeader returns the headers of a forward of r with leftMS
// milliseconds to its deadline. Release it once the message is published:
// nats.go encodes headers in PublishMsg.
func newFwdHeader(r *request, leftMS int64) *fwdHeader {
	f := fwdHeaders.Get().(*fwdHeader)
	// The time left as a string over f.digits, without allocating: it is
	// read only while f is held, by PublishMsg's encoding.
	d := strconv.AppendInt(f.digits[:0], leftMS, 10)
	left := unsafe.String(&d[0], len(d))
	for i, v := range [len(ourHeaders)]string{r.id, r.client, left, "1", "", clientReply(r)} { // Calc-Hedge-Ms is ours alone
		if v == "" {
			delete(f.h, ourHeaders[i])
			continue
		}
		f.vals[i][0] = v
		f.h[ourHeaders[i]] = f.vals[i][:]
	}
	return f
}

// fwdHeaderOf returns the headers of a forward of r, which kept the
// client's own (r.hdr), with leftMS milliseconds to its deadline: a copy,
// since attempts of one request may be sent at once.
func fwdHeaderOf(r *request, leftMS int64) nats.Header {
	h := maps.Clone(r.hdr)
	h[wire.HdrTimeout] = []string{strconv.FormatInt(leftMS, 10)}
	h[wire.HdrProgress] = progressValue
	delete(h, wire.HdrHedge)
	if v := clientReply(r); v != "" {
		h[wire.HdrClientReply] = []string{v}
	} else {
		delete(h, wire.HdrClientReply)
	}
	return h
}

// clientReply is Calc-Client-Reply's value on a forward of r: its
// client's reply subject, for a request whose client chose its id (only
// such a request is answered with a reply handed over); "" for none.
func clientReply(r *request) string {
	if r.fr.Keyed {
		return r.reply
	}
	return ""
}

func (f *fwdHeader) release() {
	f.vals = [len(ourHeaders)][1]string{} // hold no request's strings, nor f.digits
	fwdHeaders.Put(f)
}

// attemptsValues are the header values of the common attempt counts.
var attemptsValues = [...][]string{{"0"}, {"1"}, {"2"}, {"3"}, {"4"}}

// attemptsValue is the Calc-Attempts header value for n; the common ones
// are shared, since the relay is hot and nats.go only reads them.
func attemptsValue(n int) []string {
	if n >= 0 && n < len(attemptsValues) {
		return attemptsValues[n]
	}
	return []string{strconv.Itoa(n)}
}
