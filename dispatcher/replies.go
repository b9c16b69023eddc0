package dispatcher

import (
	"sync/atomic"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// Replies go only to inboxes (wire.Inboxes): a request names its reply
// subject, and a dispatcher that published wherever it was told would
// publish in its own name what the sender may not (a heartbeat, a
// hand-over, a forward). Each responder checks the subject before it does
// anything for the message; a refusal is counted by responder and logged
// at most once a second for each.

// responder is what would have answered on a refused subject.
type responder int

const (
	respRequest responder = iota // the relay of a request's reply
	respStatus
	respCtl
	respMicro
	respAck // the acknowledgement of a long job's reply
	numResponders
)

var responderNames = [numResponders]string{"request", "status", "ctl", "micro", "ack"}

// refusals counts the reply subjects refused, by responder.
type refusals struct {
	n    [numResponders]atomic.Uint64
	warn [numResponders]logLimit
}

// replyOK tells whether k may answer on subj; if not, it counts and logs
// the refusal, and nothing is to be published.
func (d *Dispatcher) replyOK(k responder, subj string) bool {
	if d.inboxes.Allows(subj) {
		return true
	}
	d.guard.refused.n[k].Add(1)
	if held, ok := d.guard.refused.warn[k].allow(time.Now()); ok {
		d.log.Warn("reply subject refused: not an inbox", "responder", responderNames[k],
			"reply", clip(subj, maxLoggedField), "held_back", held)
	}
	return false
}

// RefusedReplies is how many messages were refused because their reply
// subject is not an inbox, all responders together.
func (d *Dispatcher) RefusedReplies() uint64 {
	var n uint64
	for i := range d.guard.refused.n {
		n += d.guard.refused.n[i].Load()
	}
	return n
}

// newInboxes returns the inboxes a dispatcher of cfg answers under.
func newInboxes(cfg Config) (wire.Inboxes, error) {
	return wire.NewInboxes(cfg.Prefix, cfg.InboxPrefixes...)
}
