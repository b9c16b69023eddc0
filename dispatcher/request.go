package dispatcher

import (
	"time"

	"github.com/nats-io/nats.go"
)

// A request's life, every step of it a method of the in-flight table
// (inflight.go), under the table's lock:
//
//	admitted  counted in flight (admit), or refused at MaxInflight.
//	open      its deadline armed (open). From here on it has attempts:
//	          each forward to a worker (next) is an attempt, pending under
//	          a token of its own until a reply, a fault worth another
//	          worker (reply), a forward that could not be published
//	          (abort) or the end of the request ends it. r.tried lists the
//	          workers it went to, r.open the tokens of the attempts still
//	          waiting. More attempts come from attempt timeouts (expire),
//	          500 and 503 replies, and workers going down (goneFrom); each
//	          earlier attempt stays open, so the first reply wins.
//	done      answered, exactly once (finishLocked): a reply relayed, or
//	          an error for its deadline, for no worker left, or for the
//	          dispatcher's shutdown. Its deadline and attempts have left
//	          the table, so late replies find nothing, and nothing of it
//	          changes any more: r.tried may then be read without the lock.

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

	tried    []*member // workers tried, in order
	open     []uint64  // tokens of attempts still waiting
	timeouts int       // attempts that timed out
	retrying bool      // counted in inflight.retrying
	done     bool
	dl       timer // the deadline; dl.at is the deadline itself

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
	to     timer // the attempt timeout
	gone   bool  // its worker was declared down after it was sent
}

// triedSkip returns a skip function for the picker; inflight.mu is held
// on entry.
func (r *request) triedSkip() func(*member) bool {
	if len(r.tried) == 0 {
		return nil
	}
	return func(w *member) bool {
		for _, t := range r.tried {
			if t == w {
				return true
			}
		}
		return false
	}
}
