package dispatcher

import (
	"container/heap"
	"time"

	"github.com/bilancia/bilancia/internal/natsutil"
)

// The timer maths: what is due when, whether a timed-out request may try
// another worker, when the sweep sleeps and whether silence says anything
// about the workers. Everything here takes the time explicitly and touches
// no NATS; the sweep loop (sweep.go) acts on the answers.

// timer is a deadline (att == nil) or an attempt timeout. It lives inside
// its request or attempt, and leaves the heap as soon as that ends, so the
// heap never holds finished requests.
type timer struct {
	at  int64 // unix nanoseconds
	idx int   // position in the heap; -1 when not in it
	req *request
	att *attempt
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	t := old[n-1]
	old[n-1] = nil
	t.idx = -1
	*h = old[:n-1]
	return t
}

// schedule is the armed timers and when the sweep plans to wake. It is not
// safe for concurrent use: the in-flight table's lock guards it.
type schedule struct {
	heap     timerHeap
	nextWake int64 // unix nanoseconds
}

// arm adds tm and tells whether it is due before the sweep planned to
// wake, so that the sweep must be woken for it.
func (s *schedule) arm(tm *timer) (wake bool) {
	heap.Push(&s.heap, tm)
	if tm.at < s.nextWake {
		s.nextWake = tm.at
		return true
	}
	return false
}

// disarm takes tm out if it is armed.
func (s *schedule) disarm(tm *timer) {
	h := s.heap
	if tm.idx >= 0 && tm.idx < len(h) && h[tm.idx] == tm {
		heap.Remove(&s.heap, tm.idx)
	}
}

// popDue appends to out the timers due at now, earliest first, and takes
// them out. A popped timer keeps idx -1, so that whoever acts on it can
// tell it has not been armed again or disarmed since.
func (s *schedule) popDue(now int64, out []*timer) []*timer {
	for len(s.heap) > 0 && s.heap[0].at <= now {
		out = append(out, heap.Pop(&s.heap).(*timer))
	}
	return out
}

// plan records that the sweep wakes at next, or sooner for an armed timer
// due sooner, and returns when that is.
func (s *schedule) plan(next int64) int64 {
	if len(s.heap) > 0 && s.heap[0].at < next {
		next = s.heap[0].at
	}
	s.nextWake = next
	return next
}

// sleepUntil is how long the sweep sleeps, at now, to wake at next: never
// less than tick, so that a burst of timers is handled in rounds.
func sleepUntil(next, now int64, tick time.Duration) time.Duration {
	return max(time.Duration(next-now), tick)
}

// silenceIsNews tells whether the sweep may expire silent workers, gap
// after it last did so, with backlog heartbeats received and not yet
// handled. Heartbeats waiting to be handled, or a sweep that ran late
// (this process starved or paused), say nothing about the workers: expire
// only when sure to have heard what they said.
func silenceIsNews(backlog int, gap, deadAfter time.Duration) bool {
	return backlog == 0 && gap < deadAfter/2
}

// watchAt is when an attempt's watch fires next, in unix nanoseconds: for
// a worker that sends progress messages (silence > 0), when it will have
// been silent for silence since heard, or sooner, hedgeAfter after sent,
// for a hedge not yet sent (hedgeAfter > 0, !hedged); for a worker that
// sends none, attemptTimeout after sent.
func watchAt(sent, heard int64, silence, hedgeAfter, attemptTimeout time.Duration, hedged bool) int64 {
	if silence <= 0 {
		return sent + int64(attemptTimeout)
	}
	at := heard + int64(silence)
	if hedgeAfter > 0 && !hedged {
		at = min(at, sent+int64(hedgeAfter))
	}
	return at
}

// retryVerdict is what an attempt timeout means for its request.
type retryVerdict int

const (
	// noRetry: the request has timed out on maxAttempts workers already;
	// its open attempts may still answer before its deadline.
	noRetry retryVerdict = iota
	// retryDenied: another worker could be tried, but the retry budget
	// is spent.
	retryDenied
	// retryFirst: try another worker, and count the request among those
	// being retried.
	retryFirst
	// retryAgain: try another worker; the request is counted already.
	retryAgain
)

// retryAfterTimeout decides whether a request whose attempt just timed
// out also goes to another worker: timeouts is how many of its attempts
// timed out, this one included, and retrying whether it is counted among
// the nRetrying requests being retried, of inflight in flight. Only the
// first retry of a request draws on the budget.
func retryAfterTimeout(timeouts, maxAttempts int, retrying bool, budget natsutil.RetryBudget, inflight, nRetrying int64) retryVerdict {
	switch {
	case timeouts >= maxAttempts:
		return noRetry
	case retrying:
		return retryAgain
	case !budget.Allows(inflight, nRetrying):
		return retryDenied
	}
	return retryFirst
}
