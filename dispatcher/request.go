package dispatcher

import (
	"time"

	"github.com/nats-io/nats.go"
)

// A request's states, and the methods of the in-flight table (inflight.go)
// that move it between them, each under the table's lock but admit, which
// is one atomic count:
//
//	admitted  counted in flight by admit; past MaxInflight it is refused
//	          with a 503 and goes no further. A resend (its client's id
//	          and reply subject) of a request still open joins that one
//	          in open, and goes no further either; nor does a resend
//	          whose reply a worker handed over (orphan.go), which open
//	          answers with it.
//	open      its deadline armed by open, which also sends its first
//	          attempt. An attempt is one forward to one worker
//	          (nextLocked), pending under a token of its own until its
//	          reply (reply), a failed publish (abort) or the end of the
//	          request. r.tried lists the workers it went to, r.open the
//	          tokens still waiting. A progress message from its worker
//	          (heard) keeps an attempt alive. Another attempt (next)
//	          follows, within MaxAttempts and the retry budget (expire),
//	          an attempt silent too long (silentAfterBeats progress
//	          intervals, or the attempt timeout for a worker that sends
//	          none), a hedge (HedgeAfter, off by default), a 500 or 503
//	          reply (reply), or a worker going down (goneFrom); the
//	          attempts still waiting stay open, so that the first reply
//	          wins. Before its deadline, a request whose client asked
//	          for progress sends it a progress message every
//	          ProgressInterval (expire).
//	done      answered, exactly once, by finishLocked: a reply relayed
//	          (its worker's, or one handed over: adopt), or
//	          an error for its deadline (expire), for no worker left
//	          (next), for a failed publish (abort) or for the shutdown
//	          (finishAll). The workers of the attempts still open when
//	          it was answered are told to stop (reply, expire, adopt). Its
//	          deadline and attempts have left the table,
//	          so late replies find nothing; nothing of it changes any more,
//	          and r.tried may be read without the lock.

// request is one client request in flight. The fields above tried are set
// when it arrives and never change; the others are guarded by inflight.mu.
type request struct {
	reply   string      // the client's inbox
	hdr     nats.Header // the client's headers, kept only if it sent others than ours
	data    []byte
	id      string
	client  string
	timeout string // Calc-Timeout-Ms as sent
	start   time.Time
	// progress: the client asked for progress messages (Calc-Progress).
	progress bool
	// deadline, unix nanoseconds, set by open before any attempt.
	deadline int64
	// hedge: the client's Calc-Hedge-Ms; 0 = the dispatcher's HedgeAfter.
	hedge time.Duration
	// keyed: its client chose its id, and it is in inflight.byID while
	// open, so that a resend joins it.
	keyed bool
	// cost: its bytes counted in inflight.bytes; share: the client it is
	// counted for in inflight.clients, "" for none (limits.go).
	cost  int64
	share string

	tried    []*member // workers tried, in order
	from     int       // tried[from:] are skipped; set when held requests are sent again
	parked   bool      // in inflight.parked (hold.go)
	open     []uint64  // tokens of attempts still waiting
	timeouts int       // attempts that timed out
	retrying bool      // counted in inflight.retrying
	done     bool
	// dl is the request's timer: its deadline, or before it the next
	// progress message to a client that asked for them.
	dl timer

	// Room for the common case, one attempt, without more allocations.
	first    attempt
	triedBuf [2]*member
	openBuf  [2]uint64
}

// newRequest returns a request for reply that arrived at now.
func newRequest(reply string, data []byte, now time.Time) *request {
	r := &request{reply: reply, data: data, start: now}
	r.tried, r.open = r.triedBuf[:0], r.openBuf[:0]
	return r
}

// attemptKey finds an attempt from a reply on its worker's subject.
type attemptKey struct{ worker, id string }

// attempt is one forward of a request to one worker.
type attempt struct {
	req    *request
	w      *member
	shared bool  // its reply comes on the worker's subject, keyed by request id
	to     timer // the attempt's watch: silence, hedge, or the attempt timeout
	gone   bool  // its worker was declared down after it was sent
	// sent and heard, unix nanoseconds: when it was forwarded, and the
	// worker's last sign of life for it (a progress message).
	sent, heard int64
	// silence is how long its worker may stay silent before the attempt
	// has failed, from the worker's progress interval; 0: the worker
	// sends no progress, and the attempt timeout applies.
	silence time.Duration
	hedged  bool // a hedge was sent for it
	failed  bool // its worker fell silent and it was sent on (silentFrom)
	// expired: its worker, one that sends progress, was silent on it past
	// its silence, after the request had tried MaxAttempts workers: no
	// sign of life for it any more (stuckLocked).
	expired bool
}

// skip returns a skip function for the picker: the workers r tried, and
// with mute those fallen silent, and for a retry also those going quiet;
// inflight.mu is held on entry.
func (r *request) skip(mute bool) func(*member) bool {
	switch {
	case len(r.tried) == r.from && mute:
		return isMute
	case len(r.tried) == r.from:
		return nil
	}
	now := time.Now().UnixNano()
	return func(w *member) bool {
		if mute && (w.sign.muted() || quiet(w, now)) {
			return true
		}
		for _, t := range r.tried[r.from:] {
			if t == w {
				return true
			}
		}
		return false
	}
}
