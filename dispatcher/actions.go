package dispatcher

import (
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// act carries out the core's actions, in order: the one place on the
// request path that publishes. The lock is not held.
func (d *Dispatcher) act(acts []flight.Action) {
	var now time.Time // read once, when an action needs it
	clock := func() time.Time {
		if now.IsZero() {
			now = time.Now()
		}
		return now
	}
	for i := range acts {
		a := &acts[i]
		switch a.Kind {
		case flight.ActForward:
			d.forward(a)
		case flight.ActRelay:
			m := a.Payload.(*nats.Msg)
			d.deliver(reqOf(a.Req), m.Header, m.Data, a.Worker, a.Attempts, a.Code, clock())
		case flight.ActError:
			r, e := reqOf(a.Req), wire.NewError(a.Code, a.Msg)
			if a.Code == flight.CodeDeadline { // the core's only 504: its deadline, said as the protocol says it
				e = wire.DispatcherDeadline(r.timeout, time.Duration(a.Req.Deadline()-a.Req.Start()), a.Attempts)
			}
			d.fail(r, e)
		case flight.ActProgress:
			d.progress(reqOf(a.Req))
		case flight.ActCancel:
			m := &nats.Msg{Subject: memberOf(a.W).subject, Header: nats.Header{wire.HdrCancel: {a.Req.ID}}}
			_ = d.nc.PublishMsg(m)
		case flight.ActAck:
			if d.replyOK(respAck, a.Subject) {
				_ = d.nc.Publish(a.Subject, nil) // lost, it costs a hand-over nobody needs
			}
		case flight.ActWorkerGone:
			d.workerGone(a.Worker)
		case flight.ActFailure:
			if a.At != 0 { // a reply: the picker learns from it
				memberOf(a.W).replied(clock().UnixNano(), a.At, true)
			}
			d.changes(d.mem.Failure(clock(), memberOf(a.W), a.Msg), flight.DownLeft)
		case flight.ActSuccess:
			memberOf(a.W).replied(clock().UnixNano(), a.At, false)
			d.mem.Success(memberOf(a.W))
		case flight.ActSilent:
			d.log.Info("worker silent", "worker", a.W.ID, "requests", a.Attempts)
			d.metrics.silence.Add(uint64(a.Attempts))
		case flight.ActHold:
			d.log.Warn("holding requests: "+a.Msg, "for", time.Duration(a.At).String())
		case flight.ActResume:
			d.log.Info("worker back: forwarding held requests", "requests", a.Attempts)
		}
	}
}

// forward publishes the attempt a names, with the time left to its
// request's deadline; a publish that fails answers the request.
func (d *Dispatcher) forward(a *flight.Action) {
	r, w := reqOf(a.Req), memberOf(a.W)
	w.forwarded.Add(1)
	fwd := &nats.Msg{Subject: w.subject, Data: r.data}
	var fh *fwdHeader
	if r.hdr == nil {
		fh = newFwdHeader(r, a.LeftMS)
		fwd.Header = fh.h
	} else {
		fwd.Header = fwdHeaderOf(r, a.LeftMS)
	}
	if a.Shared {
		fwd.Reply = w.replyTo
	} else {
		fwd.Reply = d.tokenSubject(a.Token)
	}
	err := d.nc.PublishMsg(fwd)
	if fh != nil {
		fh.release() // the headers were encoded in PublishMsg
	}
	if err != nil {
		// The connection is closed or the payload too large for it: no
		// worker can help, answer now.
		code := wire.CodeInternal
		if errors.Is(err, nats.ErrMaxPayload) {
			code = wire.CodeTooLarge
		}
		d.run(flight.Event{Kind: flight.EvSendFailed, Now: time.Now().UnixNano(), Token: a.Token,
			Code: code, Msg: "forward: " + err.Error()})
	}
}

// tokenSubject is the reply subject of an attempt that cannot share its
// worker's: "<inbox>t.<token>".
func (d *Dispatcher) tokenSubject(tok uint64) string {
	var buf [16]byte
	return d.inflight.inbox + "t." + string(strconv.AppendUint(buf[:0], tok, 36))
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
	n, last := r.tried()
	out := wire.ErrorMsg(r.id, e)
	out.Subject = r.reply
	out.Header.Set(wire.HdrAttempts, strconv.Itoa(n))
	out.Header.Set(wire.HdrDispatcher, d.cfg.ID)
	if err := d.nc.PublishMsg(out); err != nil {
		d.log.Warn("reply failed", "id", r.id, "error", err.Error())
	}
	if d.reqlog != nil {
		d.reqlog.add(r, last, n, e.Code, now)
	}
}

// progress tells r's client, which asked for it, that r is still held: a
// header-only message on its reply subject.
func (d *Dispatcher) progress(r *request) {
	m := &nats.Msg{Subject: r.reply, Header: nats.Header{
		wire.HdrProgress:   progressValue,
		wire.HdrRequestID:  {r.id},
		wire.HdrDispatcher: d.idValue,
	}}
	_ = d.nc.PublishMsg(m) // a progress message lost is one beat missed
}
