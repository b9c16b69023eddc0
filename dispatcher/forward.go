package dispatcher

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// The hot path: a client request comes in (onRequest), goes to a worker
// (send), and the worker's reply goes back to the client (onReply). Each
// takes the in-flight table's lock once and publishes without it.

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
	if h := m.Header; h != nil {
		var v [len(ourHeaders)]string
		if ourHeaderValues(h, &v) {
			r.hdr = h // forwarded as they came
		}
		r.id, r.client, r.timeout = v[0], v[1], v[2]
		r.progress = v[3] != ""
		if e := checkHeaders(r, &v); e != nil { // limits.go
			d.fail(r, e)
			return
		}
		r.hedge = d.hedgeOf(v[4])
	}
	r.keyed = r.id != ""
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
	if e := d.admit(r); e != nil {
		d.fail(r, e)
		return
	}
	d.send(r, d.inflight.open(r, now, timeout), now) // one lock for the deadline and the first attempt
}

// forward sends r to the next live worker it has not tried. With none
// left, r waits for its open attempts, or fails with 503 if it has none.
func (d *Dispatcher) forward(r *request, now time.Time) {
	d.send(r, d.inflight.next(r, now), now)
}

// choose picks the worker for a request's next attempt: a live one, or
// when none is left a suspect. The in-flight table calls it with its lock
// held.
func (d *Dispatcher) choose(skip func(*member) bool) *member {
	w := d.pick.pick(d.mem.Live(), skip)
	if w == nil {
		w = d.pick.pick(d.mem.Suspects(), skip)
	}
	return w
}

// send carries out s, a step of r decided by the in-flight table at now:
// it publishes the attempt, with the time left to r's deadline, or answers
// r when no worker is left.
func (d *Dispatcher) send(r *request, s step, now time.Time) {
	switch s.kind {
	case stepWait, stepDone:
		return
	case stepOrphan:
		d.relay(r, s.orphan, 0, now) // a resend: no worker tried here
		return
	case stepJoined:
		// Its client found us silent, yet we hold it: say so at once.
		if r.progress {
			d.progress(r)
		}
		return
	case stepNone:
		msg := "no worker available"
		if s.tried > 0 {
			msg = fmt.Sprintf("no worker available after %d attempts", s.tried)
		}
		d.fail(r, wire.NewError(wire.CodeUnavailable, msg))
		return
	}
	w := s.w
	w.forwarded.Add(1)
	fwd := &nats.Msg{Subject: w.subject, Data: r.data}
	left := max((r.deadline-now.UnixNano())/int64(time.Millisecond), 1)
	var fh *fwdHeader
	if r.hdr == nil {
		fh = newFwdHeader(r, left)
		fwd.Header = fh.h
	} else {
		fwd.Header = fwdHeaderOf(r, left)
	}
	if s.replyTo != "" {
		fwd.Reply = s.replyTo
	} else {
		fwd.Reply = d.inflight.tokenSubject(s.tok)
	}
	err := d.nc.PublishMsg(fwd)
	if fh != nil {
		fh.release() // the headers were encoded in PublishMsg
	}
	if err != nil && d.inflight.abort(r, s.tok) {
		// The connection is closed or the payload too large for it: no
		// worker can help, answer now.
		code := wire.CodeInternal
		if errors.Is(err, nats.ErrMaxPayload) {
			code = wire.CodeTooLarge
		}
		d.fail(r, wire.NewError(code, "forward: "+err.Error()))
	}
}

// onReply handles a worker's reply to a forward.
func (d *Dispatcher) onReply(m *nats.Msg) {
	rest := m.Subject[len(d.inflight.inbox):]
	noResponders := natsutil.IsNoResponders(m)
	var tok uint64
	if t, ok := strings.CutPrefix(rest, "t."); ok {
		var err error
		if tok, err = strconv.ParseUint(t, 36, 64); err != nil {
			return
		}
	} else if noResponders {
		d.workerGone(rest) // no request id in the broker's status reply
		return
	}
	if m.Header != nil && m.Header[wire.HdrProgress] != nil && len(m.Data) == 0 {
		// A worker still on it: its request ids, or the token, say which.
		d.inflight.heard(tok, rest, m.Header[wire.HdrRequestID], time.Now())
		return
	}
	if m.Reply != "" {
		// A long job's reply: its worker hands it over to the other
		// dispatchers unless told that this one took it (orphan.go).
		// Deferred, so that the relay is published first.
		defer d.ack(m.Reply)
	}
	code := replyCode(m.Header)
	// 500 and 503 say the worker failed or is leaving: another may do
	// better. A 504 says the request's own time ran out: no retry helps.
	workerFault := code == wire.CodeInternal || code == wire.CodeUnavailable
	now := time.Now()
	a, kind, attempts, cancel := d.inflight.reply(tok, attemptKey{rest, m.Header.Get(wire.HdrRequestID)},
		noResponders, workerFault, d.cfg.MaxAttempts)
	if a != nil && !noResponders {
		a.w.sign.hear(now.UnixNano())
	}
	switch kind {
	case replyLate:
		return // the request was answered by another attempt
	case replyNoResponders: // on an attempt's own subject
		d.workerGone(a.w.id)
		return
	case replyRetry:
		// A worker failing or shutting down: another one may do better.
		d.changes(d.mem.Failure(now, a.w, "repeated "+strconv.Itoa(code)+" replies"))
		d.forward(a.req, now)
		return
	}
	r := a.req
	if workerFault {
		d.changes(d.mem.Failure(now, a.w, "repeated "+strconv.Itoa(code)+" replies"))
	} else {
		d.mem.Success(a.w)
	}
	d.deliver(r, m.Header, m.Data, a.w.id, attempts, code, now)
	d.cancel(r, cancel)
}

// deliver relays to r's client the reply (hdr, data) of worker, status
// code (0 for a result), r being done after attempts workers.
func (d *Dispatcher) deliver(r *request, hdr nats.Header, data []byte, worker string, attempts, code int, now time.Time) {
	if hdr == nil {
		hdr = nats.Header{}
	}
	delete(hdr, wire.HdrClientReply) // the client's own subject: for hand-overs alone
	// Shared values: nats.go only reads them, and the relay is hot.
	hdr[wire.HdrAttempts] = attemptsValue(attempts)
	hdr[wire.HdrDispatcher] = d.idValue
	out := &nats.Msg{Subject: r.reply, Header: hdr, Data: data}
	if err := d.nc.PublishMsg(out); err != nil {
		d.log.Warn("relay failed", "id", r.id, "error", err.Error())
	}
	if code == 0 {
		d.stats.served.Add(1)
	} else {
		d.stats.failed.Add(1)
	}
	d.metrics.latency.observe(code, now.Sub(r.start))
	if d.reqlog != nil {
		status := code
		if status == 0 {
			status = 200
		}
		d.reqlog.add(r, worker, attempts, status, now)
	}
}

// fail answers r with an error; r is done, or was never admitted.
func (d *Dispatcher) fail(r *request, e *wire.Error) {
	now := time.Now()
	d.stats.failed.Add(1)
	d.metrics.latency.observe(e.Code, now.Sub(r.start))
	out := wire.ErrorMsg(r.id, e)
	out.Subject = r.reply
	out.Header.Set(wire.HdrAttempts, strconv.Itoa(len(r.tried)))
	out.Header.Set(wire.HdrDispatcher, d.cfg.ID)
	if err := d.nc.PublishMsg(out); err != nil {
		d.log.Warn("reply failed", "id", r.id, "error", err.Error())
	}
	if d.reqlog != nil {
		worker := ""
		if n := len(r.tried); n > 0 {
			worker = r.tried[n-1].id
		}
		d.reqlog.add(r, worker, len(r.tried), e.Code, now)
	}
}
