package calcworker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// A request sent with Calc-Progress (every dispatcher's forward) is held
// in w.held from its arrival, while it waits for a compute goroutine too,
// to its reply. Every Config.Progress the worker tells the sender, for
// each request held for at least half of that, that it is still on it: one
// header-only message per reply subject, naming the requests by their
// Calc-Request-Id. A Calc-Cancel message naming a held request stops it:
// its computation's ctx ends, or it never starts, and it gets no reply.

// maxIDsPerProgress bounds the ids in one progress message: a dispatcher
// shares one reply subject among all its requests to a worker, and the
// headers must stay far below any broker's max payload.
const maxIDsPerProgress = 256

// job is a request the worker accepted, until it is answered.
type job struct {
	m     *nats.Msg
	id    string    // Calc-Request-Id
	since time.Time // when it arrived: its Calc-Timeout-Ms counts from here
	// held: registered in w.held (it asked for progress messages). The
	// fields below are guarded by w.jobMu.
	held      bool
	cancel    context.CancelFunc // while it is being computed
	cancelled bool
}

// jobs are pooled: a job is referenced only between newJob and
// releaseJob, by the compute path and w.held, which end forgets it from.
var jobPool = sync.Pool{New: func() any { return new(job) }}

func releaseJob(j *job) {
	*j = job{}
	jobPool.Put(j)
}

// newJob returns the job for m, registered if it asked for progress.
func (w *Worker) newJob(m *nats.Msg) *job {
	j := jobPool.Get().(*job)
	*j = job{m: m, since: time.Now()}
	if m.Header == nil {
		return j
	}
	j.id = m.Header.Get(wire.HdrRequestID)
	if m.Header[wire.HdrProgress] == nil || m.Reply == "" || w.cfg.Progress <= 0 {
		return j
	}
	j.held = true
	w.jobMu.Lock()
	w.held[j] = struct{}{}
	if !w.pgArmed && !w.pgStopped {
		w.pgArmed = true
		if w.pgTimer == nil {
			w.pgTimer = time.AfterFunc(w.cfg.Progress, w.progressTick)
		} else {
			w.pgTimer.Reset(w.cfg.Progress)
		}
	}
	w.jobMu.Unlock()
	return j
}

// begin returns the ctx to compute j with, ending at j's deadline (from
// its arrival), and false if j was cancelled while it waited.
func (w *Worker) begin(j *job) (context.Context, context.CancelFunc, bool) {
	ctx, cancel := w.ctx, context.CancelFunc(func() {})
	if d := wire.Millis(headerGet(j.m, wire.HdrTimeout), maxDeadline); d > 0 {
		ctx, cancel = context.WithDeadline(ctx, j.since.Add(d))
	} else if j.held {
		ctx, cancel = context.WithCancel(ctx)
	}
	if !j.held {
		return ctx, cancel, true
	}
	w.jobMu.Lock()
	defer w.jobMu.Unlock()
	if j.cancelled {
		cancel()
		return nil, nil, false
	}
	j.cancel = cancel
	return ctx, cancel, true
}

// end forgets j and tells whether it was cancelled, so that its reply is
// not sent.
func (w *Worker) end(j *job) (cancelled bool) {
	if !j.held {
		return false
	}
	w.jobMu.Lock()
	defer w.jobMu.Unlock()
	delete(w.held, j)
	j.cancel = nil
	return j.cancelled
}

// cancelJobs stops the held requests with the given ids: their answers
// have gone out already, from this worker or another.
func (w *Worker) cancelJobs(ids []string) {
	w.jobMu.Lock()
	defer w.jobMu.Unlock()
	for j := range w.held {
		for _, id := range ids {
			if j.id == id && !j.cancelled {
				j.cancelled = true
				if j.cancel != nil {
					j.cancel()
				}
			}
		}
	}
}

// progressTick sends the progress messages due and re-arms itself while
// requests are held.
func (w *Worker) progressTick() {
	now := time.Now()
	var byReply map[string][]string
	w.jobMu.Lock()
	for j := range w.held {
		if !j.cancelled && now.Sub(j.since) >= w.cfg.Progress/2 {
			if byReply == nil {
				byReply = make(map[string][]string)
			}
			byReply[j.m.Reply] = append(byReply[j.m.Reply], j.id)
		}
	}
	if len(w.held) == 0 || w.pgStopped {
		w.pgArmed = false
	} else {
		w.pgTimer.Reset(w.cfg.Progress)
	}
	w.jobMu.Unlock()
	budget := w.progressBudget()
	for reply, ids := range byReply {
		for _, batch := range progressBatches(ids, budget) {
			w.publish(&nats.Msg{Subject: reply, Header: nats.Header{
				wire.HdrProgress:  {"1"},
				wire.HdrRequestID: batch,
				wire.HdrWorker:    w.idValue,
			}}, "progress message")
		}
	}
}

// stopProgress ends the progress messages once nothing is held any more.
func (w *Worker) stopProgress() {
	w.jobMu.Lock()
	defer w.jobMu.Unlock()
	w.pgStopped = true
	if w.pgTimer != nil {
		w.pgTimer.Stop()
	}
}
