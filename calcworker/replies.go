package calcworker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// Replies go only to inboxes (wire.Inboxes): a worker publishes its
// replies, progress messages and claim answers where the message it got
// says, and a sender who named a Bilancia subject (a heartbeat's, a
// hand-over's) would have the worker publish it in its name. A message
// whose reply subject is not an inbox is dropped before any work: counted
// (Stats.RefusedReplies), and told to OnError at most once a second.

// ErrReplySubject reports a message left unanswered because its reply
// subject is not an inbox.
var ErrReplySubject = fmt.Errorf("calcworker: reply subject is not an inbox")

// replyOK tells whether the worker may answer m; if not, it counts and
// reports the refusal. A message with no reply subject passes: nothing
// is published for it.
func (w *Worker) replyOK(m *nats.Msg) bool {
	if m.Reply == "" || w.inboxes.Allows(m.Reply) {
		return true
	}
	w.refused.Add(1)
	w.cfg.Metrics.refusedReply()
	if held, ok := w.refusedLog.Allow(time.Now()); ok && w.cfg.OnError != nil {
		w.cfg.OnError(fmt.Errorf("%w: %s on %s (%d more held back)", ErrReplySubject,
			wire.QuoteCut(m.Reply, 64), wire.QuoteCut(m.Subject, 64), held))
	}
	return false
}
