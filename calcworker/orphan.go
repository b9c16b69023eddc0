package calcworker

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
)

// A long job's answer outlives the dispatcher that forwarded it. The
// reply to a job held long enough to be named in a progress message is
// published with a reply subject of the worker's own, "<its inbox>.<n>", and
// the dispatcher that takes it acknowledges it there with an empty
// message, after its relay. If the broker answers "no responders" instead
// (the dispatcher's inbox is gone), or nothing comes within ackWait (the
// dispatcher died with the reply unread, or a route lost it), the worker
// hands the reply over on wire.Orphan, to every dispatcher: the one that
// gets the client's resend answers it with the reply instead of running
// the job again. Short jobs are cheaper to run again than to track, and
// keep the hot path as it was.

// ackWait is how long a reply waits for its acknowledgement before it is
// handed over. A live dispatcher acknowledges within a round trip; a
// longer wait only delays a client whose dispatcher died, and a shorter
// one hands over more replies that a stalled but live dispatcher relays
// itself (harmless: the hand-over finds its request answered). A
// variable for the tests alone (export_test.go).
var ackWait = 200 * time.Millisecond

const (
	// maxBounceKept and maxBounceBytes bound the replies waiting (their
	// payloads); past them the oldest are let go, to be run again.
	maxBounceKept  = 4096
	maxBounceBytes = 16 << 20
)

// bounces keeps the replies sent with a bounce subject until they are
// acknowledged or handed over.
type bounces struct {
	prefix   string          // the bounce subjects' "<inbox>."
	handOver func(*nats.Msg) // publishes a reply on wire.HandOver
	mu       sync.Mutex
	next     uint64 // the next reply's n; kept holds n in [oldest, next)
	oldest   uint64
	kept     map[uint64]keptReply
	bytes    int           // of the payloads kept
	timer    *time.Timer   // hands over the replies unacknowledged
	armed    bool          // timer is due for the oldest reply kept
	settled  chan struct{} // closed when kept empties
	stopped  bool
}

type keptReply struct {
	m  *nats.Msg
	at time.Time
}

// newBounces returns the bounces of a worker whose bounce subjects are
// under inbox, "<inbox>.<n>", and the subject matching them all: an inbox,
// so that the dispatcher's acknowledgement is a reply to an inbox too.
func newBounces(inbox string, handOver func(*nats.Msg)) (*bounces, string) {
	b := &bounces{kept: make(map[uint64]keptReply), handOver: handOver, prefix: inbox + "."}
	return b, b.prefix + "*"
}

// keep records m, a reply about to be published at now, and returns the
// reply subject to publish it with.
func (b *bounces) keep(m *nats.Msg, now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bytes += len(m.Data)
	for b.oldest < b.next && (len(b.kept) >= maxBounceKept || b.bytes > maxBounceBytes) {
		if e, ok := b.kept[b.oldest]; ok {
			b.forget(b.oldest, e)
		}
		b.oldest++
	}
	n := b.next
	b.next++
	b.kept[n] = keptReply{m: m, at: now}
	if b.settled == nil {
		b.settled = make(chan struct{})
	}
	if !b.armed && !b.stopped {
		b.armed = true
		if b.timer == nil {
			b.timer = time.AfterFunc(ackWait, b.expire)
		} else {
			b.timer.Reset(ackWait)
		}
	}
	return b.prefix + strconv.FormatUint(n, 36)
}

// settle forgets the reply whose bounce subject is subject, and returns
// it, or nil if it is not kept (acknowledged, handed over, let go).
func (b *bounces) settle(subject string) *nats.Msg {
	rest, ok := strings.CutPrefix(subject, b.prefix)
	if !ok {
		return nil
	}
	n, err := strconv.ParseUint(rest, 36, 64)
	if err != nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.kept[n]
	if !ok {
		return nil
	}
	b.forget(n, e)
	return e.m
}

// expire hands over the replies unacknowledged for ackWait, and re-arms
// for the next one due.
func (b *bounces) expire() {
	now := time.Now()
	var due []*nats.Msg
	b.mu.Lock()
	b.armed = false
	for b.oldest < b.next {
		e, ok := b.kept[b.oldest]
		if ok {
			if wait := ackWait - now.Sub(e.at); wait > 0 {
				if !b.stopped {
					b.armed = true
					b.timer.Reset(wait)
				}
				break
			}
			due = append(due, e.m)
			b.forget(b.oldest, e)
		}
		b.oldest++
	}
	b.mu.Unlock()
	for _, m := range due {
		b.handOver(m)
	}
}

// forget drops reply n, e; b.mu is held.
func (b *bounces) forget(n uint64, e keptReply) {
	delete(b.kept, n)
	b.bytes -= len(e.m.Data)
	if len(b.kept) == 0 && b.settled != nil {
		close(b.settled)
		b.settled = nil
	}
}

// wait returns when no reply is kept, or at timeout.
func (b *bounces) wait(timeout time.Duration) {
	b.mu.Lock()
	ch := b.settled
	b.mu.Unlock()
	if ch == nil {
		return
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// stop ends the hand-overs by timer.
func (b *bounces) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
}

// bounced is the handler of the worker's bounce subjects: an
// acknowledgement settles a reply; "no responders" hands it over at once.
func (w *Worker) bounced(m *nats.Msg) {
	if r := w.bounces.settle(m.Subject); r != nil && natsutil.IsNoResponders(m) {
		w.handOver(r)
	}
}

// handOver publishes r, a reply whose dispatcher is gone, on the
// worker's wire.HandOver subject.
func (w *Worker) handOver(r *nats.Msg) {
	out := &nats.Msg{Subject: w.subj.HandOver(w.cfg.ID), Header: r.Header, Data: r.Data}
	if err := w.nc.PublishMsg(out); err != nil {
		if w.cfg.OnError != nil {
			w.cfg.OnError(fmt.Errorf("calcworker: hand over reply: %w", err))
		}
		return
	}
	w.handedOver.Add(1)
	w.cfg.Metrics.handedOver()
}

// bounceable tells whether the reply to j, held for held, is published
// with a bounce subject: j asked for progress and was held long enough to
// be named in a progress message.
func (w *Worker) bounceable(j *job, held time.Duration) bool {
	return j.held && w.bounces != nil && held >= w.cfg.Progress/2
}

// settleBounces lets the last replies be acknowledged or handed over, for
// at most wait, then stops listening.
func (w *Worker) settleBounces(wait time.Duration) {
	if w.bounces == nil {
		return
	}
	w.bounces.wait(wait)
	w.bounces.stop()
	_ = w.bounceSub.Unsubscribe()
}
