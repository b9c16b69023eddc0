package dispatcher

import (
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// The client's headers are forwarded as they came. When they are just the
// three a client sets, the request keeps their values, not the header map
// nats.go decoded, which would be most of what a pending request holds,
// and each forward encodes them from a pooled map instead.
var ourHeaders = [...]string{wire.HdrRequestID, wire.HdrClient, wire.HdrTimeout}

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
// of each of ourHeaders, so that filling it allocates nothing.
type fwdHeader struct {
	h    nats.Header
	vals [len(ourHeaders)][1]string
}

var fwdHeaders = sync.Pool{New: func() any { return &fwdHeader{h: make(nats.Header, len(ourHeaders))} }}

// newFwdHeader returns r's headers as the client sent them. Release it
// once the message is published: nats.go encodes headers in PublishMsg.
func newFwdHeader(r *request) *fwdHeader {
	f := fwdHeaders.Get().(*fwdHeader)
	for i, v := range [len(ourHeaders)]string{r.id, r.client, r.timeout} {
		if v == "" {
			delete(f.h, ourHeaders[i])
			continue
		}
		f.vals[i][0] = v
		f.h[ourHeaders[i]] = f.vals[i][:]
	}
	return f
}

func (f *fwdHeader) release() {
	f.vals = [len(ourHeaders)][1]string{} // hold no request's strings
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
