package calcworker

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// A long job's answer outlives the dispatcher that forwarded it. The
// reply to a job held long enough to be named in a progress message is
// published with a reply subject of the worker's own (wire.Bounce), so
// that if the dispatcher's inbox is gone the broker says so ("no
// responders") within a round trip. The worker then hands the reply over
// on wire.Orphan, to every dispatcher, which answers the client's resend
// of the request with it instead of computing it again. Short jobs are
// cheaper to compute again than to track, and keep the hot path as it
// was.

const (
	// bounceKeep is how long a reply waits for its "no responders": a
	// round trip, or a reconnect's buffer flushed to the next broker.
	bounceKeep = 10 * time.Second
	// maxBounceKept and maxBounceBytes bound the replies kept (their
	// payloads); the oldest go first.
	maxBounceKept  = 4096
	maxBounceBytes = 16 << 20
)

// bounces keeps the replies sent with a bounce subject until the broker
// answers one with "no responders" or it is old enough to have arrived.
type bounces struct {
	prefix string // wire.Bounce(token, n) less n
	mu     sync.Mutex
	next   uint64 // the next reply's n; kept holds n in [oldest, next)
	oldest uint64
	kept   map[uint64]keptReply
	bytes  int // of the payloads kept
}

type keptReply struct {
	m  *nats.Msg
	at time.Time
}

func newBounces(subj wire.Subjects) (*bounces, string) {
	token := nuid.Next()
	b := &bounces{kept: make(map[uint64]keptReply)}
	b.prefix = strings.TrimSuffix(subj.Bounce(token, 0), "0")
	return b, subj.Bounces(token)
}

// keep records m, a reply about to be published, and returns the reply
// subject to publish it with.
func (b *bounces) keep(m *nats.Msg, now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bytes += len(m.Data)
	for b.oldest < b.next {
		e, ok := b.kept[b.oldest]
		if ok && now.Sub(e.at) < bounceKeep && len(b.kept) < maxBounceKept && b.bytes <= maxBounceBytes {
			break
		}
		if ok {
			b.forget(b.oldest, e)
		}
		b.oldest++
	}
	n := b.next
	b.next++
	b.kept[n] = keptReply{m: m, at: now}
	return b.prefix + strconv.FormatUint(n, 36)
}

// take returns the reply whose bounce subject is subject, forgetting it,
// or nil.
func (b *bounces) take(subject string) *nats.Msg {
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

// forget drops reply n, e; b.mu is held.
func (b *bounces) forget(n uint64, e keptReply) {
	delete(b.kept, n)
	b.bytes -= len(e.m.Data)
}

// bounced is the handler of the worker's bounce subjects: on "no
// responders" it hands the reply over to the dispatchers.
func (w *Worker) bounced(m *nats.Msg) {
	if !natsutil.IsNoResponders(m) {
		return
	}
	r := w.bounces.take(m.Subject)
	if r == nil {
		return
	}
	out := &nats.Msg{Subject: w.subj.Orphan(), Header: r.Header, Data: r.Data}
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

func (w *Worker) unsubscribeBounces() {
	if w.bounceSub != nil {
		_ = w.bounceSub.Unsubscribe()
	}
}
