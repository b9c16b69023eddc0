package calcworker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// Bounds on what a request may make the worker keep or send: its headers
// (wire.CheckRequestHeaders: a request id is repeated in every progress
// message about it), its deadline (a Calc-Timeout-Ms that would overflow),
// and each progress message, cut below the connection's max payload. A
// publish that fails is counted and reported, never dropped silently.

// maxDeadline caps a request's Calc-Timeout-Ms: a larger value would
// overflow a time.Duration and end the request at once.
const maxDeadline = 365 * 24 * time.Hour

// checkRequest answers m 400 and returns false if its headers are beyond
// their bounds; the reply echoes no request id too long to echo.
func (w *Worker) checkRequest(m *nats.Msg) bool {
	err := wire.CheckRequestHeaders(m.Header)
	if err == nil {
		return true
	}
	if m.Reply != "" {
		id := headerGet(m, wire.HdrRequestID)
		if len(id) > wire.MaxRequestIDLen {
			id = ""
		}
		w.publish(withSubject(wire.ErrorMsg(id, wire.NewError(wire.CodeBadRequest, err.Error())), m.Reply), "reply")
	}
	return false
}

// progressBudget is the most header bytes one progress message carries:
// half the connection's max payload, and no more than maxProgressBytes.
func (w *Worker) progressBudget() int {
	return min(int(w.nc.MaxPayload())/2, maxProgressBytes)
}

// maxProgressBytes bounds a progress message whatever the max payload.
const maxProgressBytes = 64 << 10

// progressOverhead is a progress message's header bytes beside its ids:
// the status line, Calc-Progress and Calc-Worker with an id of up to 64.
const progressOverhead = 128

// progressBatches splits ids into the batches of one progress message
// each: at most maxIDsPerProgress ids, and at most budget bytes of
// headers ("Calc-Request-Id: <id>\r\n" each). An id alone over the budget
// cannot be named in one and is left out; the dispatcher's bound on ids
// keeps that from happening.
func progressBatches(ids []string, budget int) [][]string {
	const perID = len(wire.HdrRequestID) + len(": \r\n")
	var out [][]string
	start, size := 0, progressOverhead
	for i, id := range ids {
		n := perID + len(id)
		if progressOverhead+n > budget {
			if start < i {
				out = append(out, ids[start:i])
			}
			start, size = i+1, progressOverhead
			continue
		}
		if i-start >= maxIDsPerProgress || size+n > budget {
			out = append(out, ids[start:i])
			start, size = i, progressOverhead
		}
		size += n
	}
	if start < len(ids) {
		out = append(out, ids[start:])
	}
	return out
}

// publish publishes m, and counts and reports a failure, at most once a
// second to OnError; what says which message it was.
func (w *Worker) publish(m *nats.Msg, what string) bool {
	err := w.nc.PublishMsg(m)
	if err == nil {
		return true
	}
	w.publishFailed.Add(1)
	if held, ok := w.failedLog.Allow(time.Now()); ok && w.cfg.OnError != nil {
		w.cfg.OnError(fmt.Errorf("calcworker: %s on %s: %w (%d more failures held back)", what, wire.QuoteCut(m.Subject, 64), err, held))
	}
	return false
}
