package dispatcher

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// Orphans are replies a worker handed over on wire.HandOver because the
// dispatcher that forwarded their request is gone (calcworker/orphan.go):
// its inbox had no responders, or it did not acknowledge the reply (ack).
// Every dispatcher receives them. One that holds the request, because
// its client's resend reached it first, answers with the orphan at once
// and tells the workers it sent the resend to that it is over. Otherwise
// it keeps the orphan a while, and answers the client's resend with it
// when the resend comes, without forwarding it: the job ran once.
//
// Only a request whose client chose its id (keyed) is answered so, and
// only a request to the reply subject the forward named in
// Calc-Client-Reply: a hand-over answers its own client alone. It comes
// on the subject of the worker its Calc-Worker names (the broker holds a
// worker's credential to its own), and names the request by its id and
// its client's reply subject, both drawn at random and seen only by
// dispatchers and the workers the request was forwarded to: a worker that
// forges one reaches no request that was not forwarded to it. A 500 or
// 503 is not kept: another worker may do better, and the resend finds
// one.

// orphanKeep is how long an orphan waits for its client's resend, which
// comes after the client's silence (a second at most) or once it has
// reconnected to another broker. A variable for the tests alone.
var orphanKeep = 10 * time.Second

const (
	// maxOrphanBytes and maxOrphans bound the orphans kept, each counted
	// at what it really costs (orphanCost); the oldest go first.
	maxOrphanBytes = 16 << 20
	maxOrphans     = 16 << 10
)

// orphan is a reply handed over, kept for its request's resend.
type orphan struct {
	id     string
	client string // the reply subject of the request it answers
	hdr    nats.Header
	data   []byte // a copy of the payload alone, not the buffer it came in
	at     int64  // unix nanoseconds, when it came
	size   int
}

// orphanage holds the orphans kept, guarded by inflight.mu. A timer lets
// go of them when they expire, whether or not others arrive.
type orphanage struct {
	byID  map[string]*orphan
	fifo  []*orphan // in arrival order, taken ones included until they reach the front
	bytes int
	timer *time.Timer // armed while orphans are kept
	armed bool
	// Counted under inflight.mu, read by the metrics without it.
	kept, answered, expired atomic.Uint64
	// mismatched counts resends not answered by the orphan of their id,
	// which was for another client.
	mismatched atomic.Uint64
}

// orphanOverhead is what an orphan costs beyond its id, payload and
// headers: the orphan, its slots in byID and fifo, and its header map
// (TestOrphanAccounting measures it).
const orphanOverhead = int(unsafe.Sizeof(orphan{})) + 64 + 8 + 48

// orphanCost is what o costs the dispatcher while kept.
func orphanCost(o *orphan) int {
	return orphanOverhead + len(o.id) + cap(o.data) + int(headerCost(o.hdr))
}

// putLocked keeps o, first letting go of the orphans expired at now and,
// past maxOrphanBytes or maxOrphans, the oldest.
func (g *orphanage) putLocked(o *orphan, now int64) {
	if g.byID == nil {
		g.byID = make(map[string]*orphan)
	}
	o.size = orphanCost(o)
	if prev := g.byID[o.id]; prev != nil { // the same reply twice: keep the later
		g.dropLocked(prev)
	}
	g.byID[o.id] = o
	if len(g.fifo) >= 2*maxOrphans {
		g.compactLocked()
	}
	g.fifo = append(g.fifo, o)
	g.bytes += o.size
	g.kept.Add(1)
	g.expireLocked(now)
}

// expireLocked lets go of the orphans older than orphanKeep at now and,
// while over maxOrphanBytes or maxOrphans, the oldest.
func (g *orphanage) expireLocked(now int64) {
	for len(g.fifo) > 0 {
		o := g.fifo[0]
		if g.byID[o.id] == o {
			if now-o.at < int64(orphanKeep) && g.bytes <= maxOrphanBytes && len(g.byID) <= maxOrphans {
				break
			}
			g.dropLocked(o)
			g.expired.Add(1)
		}
		g.fifo[0] = nil
		g.fifo = g.fifo[1:]
	}
	if len(g.fifo) == 0 {
		g.fifo = nil
	}
}

// compactLocked drops from fifo the orphans no longer kept: the same id
// handed over again and again leaves one behind each time.
func (g *orphanage) compactLocked() {
	live := make([]*orphan, 0, len(g.byID)+1)
	for _, o := range g.fifo {
		if g.byID[o.id] == o {
			live = append(live, o)
		}
	}
	g.fifo = live
}

// dropLocked forgets o, and lets go of its payload and headers at once:
// its place in fifo may outlive it until it reaches the front.
func (g *orphanage) dropLocked(o *orphan) {
	delete(g.byID, o.id)
	g.bytes -= o.size
	o.hdr, o.data = nil, nil
}

// takeLocked returns and forgets the orphan kept for id, if one is for a
// request to reply subject client and it has not expired at now. One for
// another client's request stays: the resend of its own may still come.
func (g *orphanage) takeLocked(id, client string, now int64) *orphan {
	o := g.byID[id]
	if o == nil {
		return nil
	}
	if o.client != client {
		g.mismatched.Add(1)
		return nil
	}
	taken := *o
	g.dropLocked(o)
	if now-o.at >= int64(orphanKeep) {
		g.expired.Add(1)
		return nil
	}
	g.answered.Add(1)
	return &taken
}

// keepOrphanLocked keeps o for its resend and arms the expiry timer.
func (t *inflight) keepOrphanLocked(o *orphan) {
	t.orphans.putLocked(o, o.at)
	t.armOrphansLocked(o.at)
}

// armOrphansLocked arms the timer for the oldest orphan kept at now, if
// any is and the timer is not armed.
func (t *inflight) armOrphansLocked(now int64) {
	g := &t.orphans
	if g.armed || len(g.fifo) == 0 {
		return
	}
	wait := time.Duration(g.fifo[0].at + int64(orphanKeep) - now)
	g.armed = true
	if g.timer == nil {
		g.timer = time.AfterFunc(wait, t.expireOrphans)
	} else {
		g.timer.Reset(wait)
	}
}

// expireOrphans lets go of the orphans expired, and re-arms for the next.
func (t *inflight) expireOrphans() {
	now := time.Now().UnixNano()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.orphans.armed = false
	t.orphans.expireLocked(now)
	t.armOrphansLocked(now)
}

// stopOrphans stops the expiry timer; what is kept stays until collected.
func (t *inflight) stopOrphans() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.orphans.timer != nil {
		t.orphans.timer.Stop()
	}
	t.orphans.armed = true // never again
}

// adopt answers with o the request open here under o's id, returning it,
// how many workers it tried and the workers to tell it is over; or, with
// no such request, keeps o for its resend and returns nil.
func (t *inflight) adopt(o *orphan) (r *request, attempts int, cancel []*member) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r = t.byID[o.id]; r != nil && !r.done && r.reply == o.client {
		attempts = len(r.tried)
		cancel = t.cancelListLocked(r, nil)
		t.finishLocked(r)
		return r, attempts, cancel
	}
	t.keepOrphanLocked(o)
	return nil, 0, nil
}

// ack tells the worker of a long job that this dispatcher took its
// reply: an empty message on the reply's bounce subject.
func (d *Dispatcher) ack(subject string) {
	if !d.replyOK(respAck, subject) {
		return
	}
	_ = d.nc.Publish(subject, nil) // lost, it costs a hand-over nobody needs
}

// onOrphan takes a reply a worker handed over.
func (d *Dispatcher) onOrphan(m *nats.Msg) {
	id := ""
	if m.Header != nil {
		id = m.Header.Get(wire.HdrRequestID)
	}
	code := replyCode(m.Header)
	if id == "" || len(m.Data) == 0 || code == wire.CodeInternal || code == wire.CodeUnavailable {
		d.orphansRefused.Add(1)
		return
	}
	// From the worker whose subject it came on, for the client named.
	worker := m.Subject[len(d.subj.HandOver("")):]
	client := m.Header.Get(wire.HdrClientReply)
	if len(id) > wire.MaxRequestIDLen || wire.CheckRequestHeaders(m.Header) != nil ||
		m.Header.Get(wire.HdrWorker) != worker || client == "" {
		d.orphansRefused.Add(1)
		return
	}
	now := time.Now()
	o := &orphan{id: id, client: client, hdr: m.Header, data: bytes.Clone(m.Data), at: now.UnixNano()}
	r, attempts, cancel := d.inflight.adopt(o)
	if r == nil {
		return // kept for the resend
	}
	d.orphansRelayed.Add(1)
	d.relay(r, o, attempts, now)
	d.cancel(r, cancel)
}

// relay sends r's client the orphan o, as onReply relays a reply.
func (d *Dispatcher) relay(r *request, o *orphan, attempts int, now time.Time) {
	d.deliver(r, o.hdr, o.data, o.hdr.Get(wire.HdrWorker), attempts, replyCode(o.hdr), now)
}

// replyCode is a reply's error code, 0 for a result.
func replyCode(h nats.Header) int {
	if h == nil {
		return 0
	}
	code := 0
	if v := h.Get(wire.HdrErrorCode); v != "" {
		code, _ = strconv.Atoi(v)
	}
	return code
}
