package calcworker

// The request path: from the worker's subscription through the compute
// pool to the reply.

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/wire"
)

// enqueue hands a request to the compute pool. It blocks the subscription
// while the pool and its queue are full, so the bound is Concurrency +
// Queue.
func (w *Worker) enqueue(m *nats.Msg) {
	if j := w.take(m); j != nil {
		w.jobs <- j
	}
}

// take acts on a message to the worker: a cancel stops the requests it
// names; a request is accepted as a job, unless the worker has stopped.
func (w *Worker) take(m *nats.Msg) *job {
	if m.Header != nil && m.Reply == "" && w.cfg.Progress > 0 {
		if ids := m.Header[wire.HdrCancel]; ids != nil {
			w.cancelJobs(ids)
			return nil
		}
	}
	if !w.replyOK(m) || !w.checkRequest(m) || !w.accept(m) {
		return nil
	}
	return w.newJob(m)
}

// accept counts m as work to answer, or, once the worker has stopped,
// answers it 503 and returns false.
func (w *Worker) accept(m *nats.Msg) bool {
	w.mu.RLock()
	if w.stopped {
		// Only a message racing the end of a drain lands here; a
		// dispatcher treats 503 from a worker as "try the next one".
		w.mu.RUnlock()
		if m.Reply != "" {
			w.publish(withSubject(wire.ErrorMsg(headerGet(m, wire.HdrRequestID),
				wire.NewError(wire.CodeUnavailable, "worker "+w.cfg.ID+" is shutting down")), m.Reply), "reply")
		}
		return false
	}
	w.work.Add(1)
	w.inflight.Add(1)
	w.mu.RUnlock()
	return true
}

func withSubject(m *nats.Msg, subject string) *nats.Msg {
	m.Subject = subject
	return m
}

func (w *Worker) compute() {
	defer w.pool.Done()
	for j := range w.jobs {
		w.serve(j)
	}
}

// serve answers an accepted request.
func (w *Worker) serve(j *job) {
	w.handle(j)
	releaseJob(j)
	w.inflight.Add(-1)
	w.work.Done()
}

func (w *Worker) handle(j *job) {
	m, id := j.m, j.id
	ctx, cancel, ok := w.begin(j)
	if !ok {
		w.end(j) // cancelled while it waited: never computed
		w.cfg.Metrics.done("", nil, true, j.since)
		return
	}
	var reply wire.Reply
	var err error
	if w.failing() {
		err = wire.NewError(wire.CodeInternal, "worker "+w.cfg.ID+" fails on purpose (fail rate)")
	} else {
		reply, err = calc.Compute(ctx, m.Data, w.cfg.Env)
	}
	cancel()
	cancelled := w.end(j)
	w.cfg.Metrics.done(reply.Op, err, cancelled, j.since)
	if cancelled || m.Reply == "" {
		return // cancelled: its answer went out; or nobody to answer
	}
	var out *nats.Msg
	if err != nil {
		w.errs.Add(1)
		var we *wire.Error
		if !errors.As(err, &we) {
			we = wire.NewError(wire.CodeInternal, err.Error())
		}
		out = wire.ErrorMsg(id, we)
		out.Data = mustJSON(wire.Reply{ID: id, Op: reply.Op, Args: reply.Args, Worker: w.cfg.ID, Error: we})
	} else {
		reply.ID, reply.Worker = id, w.cfg.ID
		out = nats.NewMsg("")
		if id != "" {
			// The request's own value: nats.go only reads it.
			out.Header[wire.HdrRequestID] = m.Header[wire.HdrRequestID][:1]
		}
		out.Data = mustJSON(reply)
	}
	out.Header[wire.HdrWorker] = w.idValue // shared: nats.go only reads it
	out.Subject = m.Reply
	held := time.Since(j.since)
	if w.bounceable(j, held) {
		// The client's reply subject goes with a reply handed over: the
		// dispatcher answers only that client's resend with it.
		if v := m.Header[wire.HdrClientReply]; v != nil {
			out.Header[wire.HdrClientReply] = v[:1]
		}
		out.Reply = w.bounces.keep(out, j.since.Add(held))
	}
	w.served.Add(1)
	w.busy.Add(int64(held))
	w.publish(out, "reply")
}

// failing tells whether to answer this request with a 500 at once
// (Config.FailRate).
func (w *Worker) failing() bool {
	return w.cfg.FailRate > 0 && (w.cfg.FailRate >= 1 || rand.Float64() < w.cfg.FailRate)
}

func headerGet(m *nats.Msg, k string) string {
	if m.Header == nil {
		return ""
	}
	return m.Header.Get(k)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// wire.Reply holds only strings, numbers and raw JSON that calc
		// produced itself; failing here is a bug in calc.
		b, _ = json.Marshal(wire.Reply{Error: wire.NewError(wire.CodeInternal, "encode reply: "+err.Error())})
	}
	return b
}
