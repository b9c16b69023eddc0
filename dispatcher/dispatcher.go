// Package dispatcher is Bilancia's load balancer: it tracks calc workers
// from their heartbeats and forwards each request to the next live one,
// relaying the reply to the client.
//
// The forwarding path spends no goroutine and no blocking request per
// forward: each forward is published with a reply subject under the
// dispatcher's own wildcard inbox, one subscription receives every worker
// reply, a map finds the pending attempt, and one sweep loop handles
// attempt timeouts and deadlines.
//
// The reply subject is the same for every forward to a worker,
// "<inbox><worker id>", and the request id the worker echoes tells the
// attempts apart: a subject never seen again costs the broker a subject
// cache miss per message, about 2µs. A request whose id is already
// pending on that worker (a client's resend) gets a subject of its own,
// "<inbox>t.<token>", as does nothing else. All attempts of a
// request stay open until it is answered, so the first reply wins and a
// slow attempt is never wasted; exactly one reply goes to the client.
package dispatcher

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/wire"
)

// Config configures a Dispatcher. Zero values mean the documented defaults.
type Config struct {
	Conn   *nats.Conn // required; the dispatcher does not close it
	ID     string     // "" = "d-" and 4 random hex digits
	Prefix string     // "" = "calc"
	// Subject is where requests come in, in the dispatchers' queue group;
	// "" = <prefix>.request. Another subject lets a dispatcher with other
	// settings run beside the usual ones, on the same workers.
	Subject string
	// HeartbeatConn, if set, carries the workers' heartbeats instead of
	// Conn, so that they can be read in batches (PacedDialer) without
	// delaying requests. The dispatcher does not close it.
	HeartbeatConn *nats.Conn
	// Heartbeat is the workers' heartbeat interval. 0 = 1s.
	Heartbeat time.Duration
	// DeadAfter marks a silent worker down. 0 = 3 × Heartbeat.
	DeadAfter time.Duration
	// RequestTimeout is a request's deadline when the client sends none.
	// 0 = 5s.
	RequestTimeout time.Duration
	// MaxRequestTimeout caps the deadline a client may ask for. 0 = 5m.
	MaxRequestTimeout time.Duration
	// AttemptTimeout is how long a worker may stay silent before the
	// request is also sent to the next worker (the first attempt stays
	// open). 0 = 1s.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the workers tried for one request because of
	// timeouts; "no responders" and workers declared down do not count.
	// 0 = 3.
	MaxAttempts int
	// RetryBudget is the fraction of in-flight requests that may be
	// retried on a timeout at once, so that retries cannot multiply load
	// during an outage; MinRetries are always allowed. 0 = 0.2 and 10.
	RetryBudget float64
	MinRetries  int
	// MaxInflight caps requests in flight; beyond it the dispatcher answers
	// 503 at once instead of queueing. 0 = 10000.
	MaxInflight int
	// Strategy is RoundRobin (default) or LeastInflight.
	Strategy string
	// Outlier tunes passive outlier detection.
	Outlier OutlierConfig
	// Tick is the resolution of timeouts and deadlines. 0 = 5ms.
	Tick time.Duration

	// Logger gets events: start, stop, worker state changes, client
	// connects. nil = discard.
	Logger *slog.Logger
	// LogRequests also logs every request, off the hot path: to
	// RequestLog if set, as JSON lines in the shape of slog's JSON
	// handler, written in batches; else to RequestLogger (nil = Logger).
	LogRequests   bool
	RequestLog    io.Writer
	RequestLogger *slog.Logger
	// LogQueue bounds request records waiting to be written; when full,
	// records are dropped and counted rather than slow the hot path.
	// 0 = 16384 (about 2 MiB).
	LogQueue int
}

// Stats are the dispatcher's counters.
type Stats struct {
	Served, Failed, Retries, RetriesDenied, Redispatched, LogDropped uint64
	Inflight                                                         int64
}

// attemptsValues are the header values of the common attempt counts.
var attemptsValues = [...][]string{{"0"}, {"1"}, {"2"}, {"3"}, {"4"}}

func attemptsValue(n int) []string {
	if n >= 0 && n < len(attemptsValues) {
		return attemptsValues[n]
	}
	return []string{strconv.Itoa(n)}
}

// Dispatcher forwards requests to workers. Create it with New.
type Dispatcher struct {
	cfg     Config
	nc      *nats.Conn
	subj    wire.Subjects
	log     *slog.Logger
	mem     *Membership
	pick    picker
	inbox   string   // "<inbox>." prefix of forward reply subjects
	idValue []string // Calc-Dispatcher's value
	start   time.Time

	mu       sync.Mutex
	pending  map[uint64]*attempt
	shared   map[attemptKey]uint64 // attempts on their worker's reply subject
	timers   timerHeap
	nextTok  uint64
	nextWake int64         // when the sweep plans to wake, unix nanoseconds
	wake     chan struct{} // wakes the sweep for a timer due sooner

	inflight atomic.Int64
	retrying atomic.Int64 // requests with a timeout retry outstanding
	stats    struct {
		served, failed, retries, denied, redispatched atomic.Uint64
	}

	reqlog *requestLog
	subs   []subscription
	hbSub  *nats.Subscription
	hbConn *nats.Conn // hbSub's connection: Config.HeartbeatConn or nc
	quit   chan struct{}
	wg     sync.WaitGroup

	stopOnce sync.Once
}

// subscription is one of the dispatcher's subscriptions and the connection
// it is on.
type subscription struct {
	*nats.Subscription
	nc *nats.Conn
}

// request is one client request in flight.
type request struct {
	reply    string      // the client's inbox
	hdr      nats.Header // the client's headers, kept only if it sent others than ours
	data     []byte
	id       string
	client   string
	timeout  string // Calc-Timeout-Ms as sent
	start    time.Time
	tried    []*member // workers tried, in order
	open     []uint64  // tokens of attempts still waiting
	timeouts int       // attempts that timed out
	retrying bool      // counted in Dispatcher.retrying
	done     bool
	dl       timer // the deadline; dl.at is the deadline itself

	// Room for the common case, one attempt, without more allocations.
	first    attempt
	triedBuf [2]*member
	openBuf  [2]uint64
}

// The client's headers are forwarded as they came. When they are just the
// three a client sets, the request keeps their values, not the header map
// nats.go decoded (about 400 bytes, most of what a pending request held),
// and each forward encodes them from a pooled map instead.
var ourHeaders = [...]string{wire.HdrRequestID, wire.HdrClient, wire.HdrTimeout}

// ourHeaderValues reads the first value of each of ourHeaders into v, in
// their order, and tells whether h holds headers beyond ours, or several
// values for one of them.
func ourHeaderValues(h nats.Header, v *[len(ourHeaders)]string) (others bool) {
	n := 0
	for i, k := range ourHeaders {
		vs := h[k]
		if len(vs) > 0 {
			v[i] = vs[0]
			n++
		}
		others = others || len(vs) > 1
	}
	return others || len(h) > n
}

type fwdHeader struct {
	h    nats.Header
	vals [len(ourHeaders)][1]string
}

var fwdHeaders = sync.Pool{New: func() any { return &fwdHeader{h: make(nats.Header, len(ourHeaders))} }}

// newFwdHeader returns r's headers as the client sent them.
func newFwdHeader(r *request) *fwdHeader {
	f := fwdHeaders.Get().(*fwdHeader)
	for i, v := range [len(ourHeaders)]string{r.id, r.client, r.timeout} {
		if v == "" {
			delete(f.h, ourHeaders[i])
			continue
		}
		f.vals[i][0] = v
		f.h[ourHeaders[i]] = f.vals[i][:]
	}
	return f
}

func (f *fwdHeader) release() {
	f.vals = [len(ourHeaders)][1]string{} // hold no request's strings
	fwdHeaders.Put(f)
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

// New validates cfg and returns a dispatcher ready to Start.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Conn == nil {
		return nil, errors.New("dispatcher: Config.Conn is required")
	}
	if cfg.ID == "" {
		cfg.ID = fmt.Sprintf("d-%04x", rand.N(1<<16))
	}
	if cfg.Subject == "" {
		cfg.Subject = wire.Subjects{Prefix: cfg.Prefix}.Request()
	}
	if !wire.ValidSubject(cfg.Subject) {
		return nil, fmt.Errorf("dispatcher: subject %q must be a literal subject (dot-separated tokens, no wildcards)", cfg.Subject)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 3 * cfg.Heartbeat
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.MaxRequestTimeout <= 0 {
		cfg.MaxRequestTimeout = 5 * time.Minute
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = 0.2
	}
	if cfg.MinRetries <= 0 {
		cfg.MinRetries = 10
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 10000
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 5 * time.Millisecond
	}
	if cfg.LogQueue <= 0 {
		cfg.LogQueue = 1 << 14
	}
	if cfg.Strategy == "" {
		cfg.Strategy = RoundRobin
	}
	p, err := newPicker(cfg.Strategy)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.HeartbeatConn == nil {
		cfg.HeartbeatConn = cfg.Conn
	}
	d := &Dispatcher{
		cfg: cfg, nc: cfg.Conn, hbConn: cfg.HeartbeatConn, subj: wire.Subjects{Prefix: cfg.Prefix}, log: log,
		idValue: []string{cfg.ID},
		mem:     NewMembership(cfg.DeadAfter, cfg.Outlier),
		pick:    p,
		pending: make(map[uint64]*attempt),
		shared:  make(map[attemptKey]uint64),
		quit:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	if cfg.LogRequests {
		rl := cfg.RequestLogger
		if rl == nil {
			rl = log
		}
		d.reqlog = newRequestLog(rl, cfg.RequestLog, cfg.LogQueue)
	}
	return d, nil
}

// ID is the dispatcher's id.
func (d *Dispatcher) ID() string { return d.cfg.ID }

// Membership is the dispatcher's table of workers.
func (d *Dispatcher) Membership() *Membership { return d.mem }

// LiveWorkers is the number of workers currently up, in rotation.
func (d *Dispatcher) LiveWorkers() int { return len(d.mem.Live()) }

// Start subscribes and asks the workers to introduce themselves, so that a
// restarted dispatcher knows them at once.
func (d *Dispatcher) Start() error {
	d.start = time.Now()
	// A private inbox prefix per dispatcher: "_INBOX.<nuid>.".
	d.inbox = nats.InboxPrefix + nuid.Next() + "."
	subscribe := func(nc *nats.Conn, subj, queue string, cb nats.MsgHandler) error {
		var s *nats.Subscription
		var err error
		if queue != "" {
			s, err = nc.QueueSubscribe(subj, queue, cb)
		} else {
			s, err = nc.Subscribe(subj, cb)
		}
		if err != nil {
			return fmt.Errorf("dispatcher: subscribe %s: %w", subj, err)
		}
		// MaxInflight bounds the work; the buffers only absorb bursts.
		_ = s.SetPendingLimits(-1, 256<<20)
		d.subs = append(d.subs, subscription{s, nc})
		return nil
	}
	// Worker replies and heartbeats before requests: nothing is forwarded
	// before its answer can be heard.
	if err := subscribe(d.hbConn, d.subj.Heartbeats(), "", d.onHeartbeat); err != nil {
		return err
	}
	d.hbSub = d.subs[0].Subscription // the sweep reads its backlog
	for _, s := range []struct {
		subj string
		cb   nats.MsgHandler
	}{
		{d.inbox + ">", d.onReply}, // "<worker id>" and "t.<token>"
		{d.subj.Status(), d.onStatus},
		{d.subj.ClientConnect(), d.onClient},
		{d.subj.ClientDisconnect(), d.onClient},
	} {
		if err := subscribe(d.nc, s.subj, "", s.cb); err != nil {
			d.unsubscribe()
			return err
		}
	}
	conns := []*nats.Conn{d.nc}
	if d.hbConn != d.nc {
		conns = append(conns, d.hbConn)
	}
	for _, nc := range conns {
		if err := nc.Flush(); err != nil {
			d.unsubscribe()
			return fmt.Errorf("dispatcher: flush: %w", err)
		}
	}
	if err := d.nc.Publish(d.subj.Discover(), nil); err != nil {
		d.unsubscribe()
		return fmt.Errorf("dispatcher: discover: %w", err)
	}
	if err := subscribe(d.nc, d.cfg.Subject, wire.DispatcherQueue, d.onRequest); err != nil {
		d.unsubscribe()
		return err
	}
	if err := d.nc.Flush(); err != nil {
		d.unsubscribe()
		return fmt.Errorf("dispatcher: flush: %w", err)
	}
	if d.reqlog != nil {
		d.reqlog.start()
	}
	d.wg.Add(1)
	go d.sweep()
	d.log.Info("dispatcher started", "dispatcher", d.cfg.ID, "subject", d.cfg.Subject,
		"queue", wire.DispatcherQueue, "strategy", d.cfg.Strategy, "max_inflight", d.cfg.MaxInflight,
		"request_timeout", d.cfg.RequestTimeout.String(), "dead_after", d.cfg.DeadAfter.String())
	return nil
}

func (d *Dispatcher) unsubscribe() {
	for _, s := range d.subs {
		_ = s.Unsubscribe()
	}
}

// onRequest is the hot path: take a client request and forward it.
func (d *Dispatcher) onRequest(m *nats.Msg) {
	if m.Reply == "" {
		return // nobody to answer; computing it would be wasted
	}
	now := time.Now()
	r := &request{reply: m.Reply, data: m.Data, start: now}
	r.tried, r.open = r.triedBuf[:0], r.openBuf[:0]
	if h := m.Header; h != nil {
		var v [len(ourHeaders)]string
		if ourHeaderValues(h, &v) {
			r.hdr = h // forwarded as they came
		}
		r.id, r.client, r.timeout = v[0], v[1], v[2]
	}
	if r.id == "" {
		// A request from a plain NATS client: give it an id, for the log
		// and for the worker to echo.
		r.id = nuid.Next()
		if r.hdr != nil {
			r.hdr.Set(wire.HdrRequestID, r.id)
		}
	}
	timeout := d.cfg.RequestTimeout
	if ms, err := strconv.ParseInt(r.timeout, 10, 64); err == nil && ms > 0 {
		timeout = min(time.Duration(ms)*time.Millisecond, d.cfg.MaxRequestTimeout)
	}
	if n := d.inflight.Add(1); n > int64(d.cfg.MaxInflight) {
		d.inflight.Add(-1)
		d.fail(r, wire.NewError(wire.CodeUnavailable,
			fmt.Sprintf("dispatcher %s is at capacity (%d requests in flight)", d.cfg.ID, d.cfg.MaxInflight)))
		return
	}
	r.dl = timer{at: now.Add(timeout).UnixNano(), req: r, idx: -1}
	d.mu.Lock() // one lock for the deadline and the first forward
	d.pushLocked(&r.dl)
	d.forwardLocked(r, now)
}

// forward sends r to the next live worker it has not tried. With none
// left, r waits for its open attempts, or fails with 503 if it has none.
func (d *Dispatcher) forward(r *request, now time.Time) {
	d.mu.Lock()
	d.forwardLocked(r, now)
}

// forwardLocked is forward with d.mu held; it releases d.mu before
// publishing, so that no lock is held across the network write.
func (d *Dispatcher) forwardLocked(r *request, now time.Time) {
	if r.done {
		d.mu.Unlock()
		return
	}
	skip := r.triedSkip()
	w := d.pick.pick(d.mem.Live(), skip)
	if w == nil {
		w = d.pick.pick(d.mem.Suspects(), skip)
	}
	if w == nil {
		if len(r.open) > 0 && !d.allGoneLocked(r) {
			d.mu.Unlock()
			return // an earlier attempt may still answer
		}
		msg := "no worker available"
		if len(r.tried) > 0 {
			msg = fmt.Sprintf("no worker available after %d attempts", len(r.tried))
		}
		d.finishLocked(r)
		d.mu.Unlock()
		d.fail(r, wire.NewError(wire.CodeUnavailable, msg))
		return
	}
	d.nextTok++
	tok := d.nextTok
	a := &r.first
	if len(r.tried) > 0 {
		a = new(attempt)
	}
	*a = attempt{req: r, w: w}
	a.to = timer{req: r, att: a, idx: -1}
	d.pending[tok] = a
	key := attemptKey{w.id, r.id}
	if _, dup := d.shared[key]; !dup {
		a.shared = true
		d.shared[key] = tok
		if w.replyTo == "" {
			w.replyTo = d.inbox + w.id
		}
	}
	shared, replyTo := a.shared, w.replyTo
	w.inflight.Add(1) // under d.mu: dropLocked's -1 cannot come first
	r.open = append(r.open, tok)
	r.tried = append(r.tried, w)
	if at := now.Add(d.cfg.AttemptTimeout).UnixNano(); at < r.dl.at {
		a.to.at = at
		d.pushLocked(&a.to)
	}
	d.mu.Unlock()

	w.forwarded.Add(1)
	fwd := &nats.Msg{Subject: w.subject, Header: r.hdr, Data: r.data}
	var fh *fwdHeader
	if fwd.Header == nil {
		fh = newFwdHeader(r)
		fwd.Header = fh.h
	}
	if shared {
		fwd.Reply = replyTo
	} else {
		var buf [16]byte
		fwd.Reply = d.inbox + "t." + string(strconv.AppendUint(buf[:0], tok, 36))
	}
	err := d.nc.PublishMsg(fwd)
	if fh != nil {
		fh.release() // the headers were encoded in PublishMsg
	}
	if err != nil {
		// The connection is closed or the payload too large for it: no
		// worker can help, answer now.
		d.mu.Lock()
		done := r.done
		d.dropLocked(tok)
		if !done {
			d.finishLocked(r)
		}
		d.mu.Unlock()
		if !done {
			code := wire.CodeInternal
			if errors.Is(err, nats.ErrMaxPayload) {
				code = wire.CodeTooLarge
			}
			d.fail(r, wire.NewError(code, "forward: "+err.Error()))
		}
	}
}

// allGoneLocked tells whether every open attempt of r is on a worker
// declared down since it was sent: with no live worker left, r then gets
// its 503 now rather than at its deadline; d.mu must be held.
func (d *Dispatcher) allGoneLocked(r *request) bool {
	for _, t := range r.open {
		if a := d.pending[t]; a != nil && !a.gone {
			return false
		}
	}
	return true
}

// triedSkip returns a skip function for the picker; r is read under d.mu.
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

// dropLocked forgets attempt tok; d.mu must be held.
func (d *Dispatcher) dropLocked(tok uint64) *attempt {
	a := d.pending[tok]
	if a == nil {
		return nil
	}
	delete(d.pending, tok)
	if a.shared {
		delete(d.shared, attemptKey{a.w.id, a.req.id})
	}
	d.timers.remove(&a.to)
	a.w.inflight.Add(-1)
	r := a.req
	for i, t := range r.open {
		if t == tok {
			r.open = append(r.open[:i], r.open[i+1:]...)
			break
		}
	}
	return a
}

// finishLocked marks r answered and forgets its open attempts, so that late
// replies are dropped; d.mu must be held.
func (d *Dispatcher) finishLocked(r *request) {
	r.done = true
	d.timers.remove(&r.dl)
	for len(r.open) > 0 {
		d.dropLocked(r.open[0])
	}
	if r.retrying {
		r.retrying = false
		d.retrying.Add(-1)
	}
	d.inflight.Add(-1)
}

// onReply handles a worker's reply to a forward.
func (d *Dispatcher) onReply(m *nats.Msg) {
	rest := m.Subject[len(d.inbox):]
	var tok uint64
	if t, ok := strings.CutPrefix(rest, "t."); ok {
		var err error
		if tok, err = strconv.ParseUint(t, 36, 64); err != nil {
			return
		}
	} else if isNoResponders(m) {
		d.workerGone(rest) // no request id in the broker's status reply
		return
	}
	now := time.Now()
	d.mu.Lock()
	if tok == 0 && m.Header != nil {
		tok = d.shared[attemptKey{rest, m.Header.Get(wire.HdrRequestID)}]
	}
	a := d.pending[tok]
	if a == nil {
		d.mu.Unlock()
		return // late: the request was answered by another attempt
	}
	r := a.req
	if isNoResponders(m) { // on an attempt's own subject
		d.mu.Unlock()
		d.workerGone(a.w.id)
		return
	}
	code := 0
	if m.Header != nil {
		if h := m.Header.Get(wire.HdrErrorCode); h != "" {
			code, _ = strconv.Atoi(h)
		}
	}
	// 500 and 503 say the worker failed or is leaving: another may do
	// better. A 504 says the request's own time ran out: no retry helps.
	workerFault := code == wire.CodeInternal || code == wire.CodeUnavailable
	if workerFault && len(r.tried) < d.cfg.MaxAttempts {
		// A worker failing or shutting down: another one may do better.
		d.dropLocked(tok)
		d.mu.Unlock()
		d.changes(d.mem.Failure(now, a.w, "repeated "+strconv.Itoa(code)+" replies"))
		d.forward(r, now)
		return
	}
	attempts := len(r.tried)
	d.finishLocked(r)
	d.mu.Unlock()

	if workerFault {
		d.changes(d.mem.Failure(now, a.w, "repeated "+strconv.Itoa(code)+" replies"))
	} else {
		d.mem.Success(a.w)
	}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	// Shared values: nats.go only reads them, and the relay is hot.
	m.Header[wire.HdrAttempts] = attemptsValue(attempts)
	m.Header[wire.HdrDispatcher] = d.idValue
	out := &nats.Msg{Subject: r.reply, Header: m.Header, Data: m.Data}
	if err := d.nc.PublishMsg(out); err != nil {
		d.log.Warn("relay failed", "id", r.id, "error", err.Error())
	}
	if code == 0 {
		d.stats.served.Add(1)
	} else {
		d.stats.failed.Add(1)
	}
	if d.reqlog != nil {
		status := code
		if status == 0 {
			status = 200
		}
		d.reqlog.add(r, a.w.id, attempts, status, now)
	}
}

func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header != nil && m.Header.Get("Status") == "503"
}

// fail answers r with an error; r must not be pending any more.
func (d *Dispatcher) fail(r *request, e *wire.Error) {
	d.stats.failed.Add(1)
	out := wire.ErrorMsg(r.id, e)
	out.Subject = r.reply
	out.Header.Set(wire.HdrAttempts, strconv.Itoa(len(r.tried)))
	out.Header.Set(wire.HdrDispatcher, d.cfg.ID)
	if err := d.nc.PublishMsg(out); err != nil {
		d.log.Warn("reply failed", "id", r.id, "error", err.Error())
	}
	if d.reqlog != nil {
		worker := ""
		if n := len(r.tried); n > 0 {
			worker = r.tried[n-1].id
		}
		d.reqlog.add(r, worker, len(r.tried), e.Code, time.Now())
	}
}

// changes logs membership changes and re-dispatches the requests waiting
// on a worker that went down, instead of waiting for their timeouts.
func (d *Dispatcher) changes(cs []Change) {
	for _, c := range cs {
		attrs := []any{"worker", c.ID, "from", c.From, "to", c.To, "reason", c.Reason}
		if !c.Until.IsZero() {
			attrs = append(attrs, "until", c.Until)
		}
		d.log.Info("worker "+c.To, attrs...)
		if c.To == wire.StateDown {
			d.redispatch(c.ID)
		}
	}
}

// workerGone handles "no responders" for a forward to a worker: it has no
// subscription left, so it goes down, without waiting for its heartbeats
// to stop, and every request waiting on it goes on to the next worker at
// once. On the worker's shared reply subject the broker's status reply
// carries no request id, so which forward found no subscriber is not known;
// all are sent on, their attempts left open, since a draining worker still
// answers what it holds.
func (d *Dispatcher) workerGone(workerID string) {
	var cs []Change
	if w := d.mem.Get(workerID); w != nil {
		cs = d.mem.MarkDown(w, "no responders")
	}
	if len(cs) > 0 {
		d.changes(cs) // a worker going down is re-dispatched there
		return
	}
	// Already down (tried as a suspect): nothing re-dispatched it yet.
	d.redispatch(workerID)
}

func (d *Dispatcher) redispatch(workerID string) {
	d.mu.Lock()
	var reqs []*request
	for _, a := range d.pending {
		if a.w.id == workerID && !a.req.done && !a.gone {
			a.gone = true
			reqs = append(reqs, a.req)
		}
	}
	d.mu.Unlock()
	now := time.Now()
	for _, r := range reqs {
		d.stats.redispatched.Add(1)
		d.forward(r, now)
	}
}

func (d *Dispatcher) onHeartbeat(m *nats.Msg) {
	hb, err := wire.DecodeHeartbeat(m.Data)
	if err == nil && !wire.ValidID(hb.ID) {
		err = fmt.Errorf("worker id %q is not a subject token of up to 64 printable characters", hb.ID)
	}
	if err != nil {
		d.log.Warn("bad heartbeat", "subject", m.Subject, "error", err.Error())
		return
	}
	if hb.Subject == "" {
		hb.Subject = d.subj.Worker(hb.ID)
	}
	d.changes(d.mem.Heartbeat(time.Now(), hb))
}

func (d *Dispatcher) onClient(m *nats.Msg) {
	var h wire.ClientHello
	if err := json.Unmarshal(m.Data, &h); err != nil {
		return
	}
	msg := "client connected"
	if m.Subject == d.subj.ClientDisconnect() {
		msg = "client disconnected"
	}
	d.log.Info(msg, "client", h.Name, "host", h.Host, "ip", h.IP, "pid", h.PID, "nats_client_id", h.ClientID)
}

// Status is the dispatcher's view, as answered on the status subject.
func (d *Dispatcher) Status() wire.Status {
	st := d.Stats()
	return wire.Status{
		Dispatcher: d.cfg.ID, Version: wire.Version, StartedAt: d.start,
		Inflight: st.Inflight, Served: st.Served, Failed: st.Failed,
		Strategy: d.cfg.Strategy, Subject: d.cfg.Subject, Workers: d.mem.Snapshot(),
	}
}

func (d *Dispatcher) onStatus(m *nats.Msg) {
	b, _ := json.Marshal(d.Status())
	_ = m.Respond(b)
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	s := Stats{
		Served: d.stats.served.Load(), Failed: d.stats.failed.Load(),
		Retries: d.stats.retries.Load(), RetriesDenied: d.stats.denied.Load(),
		Redispatched: d.stats.redispatched.Load(), Inflight: d.inflight.Load(),
	}
	if d.reqlog != nil {
		s.LogDropped = d.reqlog.dropped.Load()
	}
	return s
}

// sweep handles attempt timeouts and deadlines, and expires silent workers.
// It sleeps until the next of them is due (never less than Tick), so that
// an idle dispatcher does not wake every Tick.
func (d *Dispatcher) sweep() {
	defer d.wg.Done()
	expireEvery := max(d.cfg.Heartbeat/4, d.cfg.Tick)
	lastExpire := time.Now()
	t := time.NewTimer(d.cfg.Tick)
	defer t.Stop()
	var due []*timer
	for {
		select {
		case <-d.quit:
			return
		case <-d.wake:
		case <-t.C:
		}
		now := time.Now()
		due = d.due(now, due[:0])
		for _, tm := range due {
			d.expire(tm, now)
		}
		clear(due)
		if gap := now.Sub(lastExpire); gap >= expireEvery {
			lastExpire = now
			// Heartbeats received but not yet handled, or a sweep
			// that ran late (this process starved or paused), say
			// nothing about the workers: expire only when we are
			// sure to have heard what they said.
			if n, _, _ := d.hbSub.Pending(); n == 0 && gap < d.cfg.DeadAfter/2 {
				d.changes(d.mem.Expire(now))
			}
		}
		next := lastExpire.Add(expireEvery).UnixNano()
		d.mu.Lock()
		if len(d.timers) > 0 && d.timers[0].at < next {
			next = d.timers[0].at
		}
		d.nextWake = next
		d.mu.Unlock()
		t.Reset(max(time.Duration(next-time.Now().UnixNano()), d.cfg.Tick))
	}
}

// pushLocked arms tm, and wakes the sweep if tm is due before it planned
// to wake; d.mu must be held.
func (d *Dispatcher) pushLocked(tm *timer) {
	heap.Push(&d.timers, tm)
	if tm.at < d.nextWake {
		d.nextWake = tm.at
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
}

// due pops the timers that are due at now. A popped timer keeps idx -1,
// so that expire can tell it has not been re-armed or removed since.
func (d *Dispatcher) due(now time.Time, out []*timer) []*timer {
	n := now.UnixNano()
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.timers) > 0 && d.timers[0].at <= n {
		out = append(out, heap.Pop(&d.timers).(*timer))
	}
	return out
}

// expire acts on one due timer: a deadline answers 504; an attempt
// timeout counts against the worker and, within the retry budget, sends
// the request to the next worker too.
func (d *Dispatcher) expire(tm *timer, now time.Time) {
	r := tm.req
	if tm.att == nil {
		d.mu.Lock()
		if r.done {
			d.mu.Unlock()
			return
		}
		attempts := len(r.tried)
		d.finishLocked(r)
		d.mu.Unlock()
		d.fail(r, wire.NewError(wire.CodeDeadline,
			fmt.Sprintf("deadline passed after %v and %d attempt(s)", now.Sub(r.start).Round(time.Millisecond), attempts)))
		return
	}
	d.mu.Lock()
	a := tm.att
	if r.done || !d.isOpen(r, a) {
		d.mu.Unlock()
		return // answered, or the attempt ended, since the pop
	}
	r.timeouts++
	retry := r.timeouts < d.cfg.MaxAttempts
	if retry && !r.retrying {
		allowed := int64(d.cfg.RetryBudget * float64(d.inflight.Load()))
		if d.retrying.Load() >= max(allowed, int64(d.cfg.MinRetries)) {
			retry = false
			d.stats.denied.Add(1)
		} else {
			r.retrying = true
			d.retrying.Add(1)
		}
	}
	d.mu.Unlock()
	d.changes(d.mem.Failure(now, a.w, "repeated timeouts"))
	if retry {
		d.stats.retries.Add(1)
		d.forward(r, now)
	}
}

// isOpen tells whether attempt a still waits for its reply; d.mu must be
// held. r.open is short: one entry per worker tried.
func (d *Dispatcher) isOpen(r *request, a *attempt) bool {
	for _, t := range r.open {
		if d.pending[t] == a {
			return true
		}
	}
	return false
}

// Shutdown stops taking requests, lets those in flight finish until ctx
// ends (then answers them 503), and stops. Safe to call more than once and
// concurrently.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	var err error
	d.stopOnce.Do(func() { err = d.shutdown(ctx) })
	return err
}

func (d *Dispatcher) shutdown(ctx context.Context) error {
	// Stop taking requests first; replies and heartbeats keep flowing so
	// that requests in flight can finish.
	if len(d.subs) > 0 {
		req := d.subs[len(d.subs)-1]
		closed := req.StatusChanged(nats.SubscriptionClosed)
		if !req.nc.IsConnected() {
			_ = req.Unsubscribe() // a drain would wait for a reconnect
		} else if req.Drain() == nil {
			select {
			case <-closed:
			case <-ctx.Done():
			}
		}
	}
	var err error
	tick := time.NewTicker(d.cfg.Tick)
	defer tick.Stop()
wait:
	for d.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("dispatcher: shutdown: %w", ctx.Err())
			break wait
		case <-tick.C:
		}
	}
	close(d.quit)
	d.wg.Wait()
	// Drain the rest, so that what already reached the broker for us (a
	// worker's last "draining" heartbeat, a late reply) is still heard.
	for _, sub := range d.subs {
		closed := sub.StatusChanged(nats.SubscriptionClosed)
		if !sub.IsValid() || !sub.nc.IsConnected() || sub.Drain() != nil {
			_ = sub.Unsubscribe()
			continue
		}
		select {
		case <-closed:
		case <-ctx.Done():
			_ = sub.Unsubscribe()
		}
	}
	// Whatever is still open gets its one reply.
	d.mu.Lock()
	var left []*request
	for _, a := range d.pending {
		if !a.req.done {
			d.finishLocked(a.req)
			left = append(left, a.req)
		}
	}
	d.mu.Unlock()
	for _, r := range left {
		d.fail(r, wire.NewError(wire.CodeUnavailable, "dispatcher "+d.cfg.ID+" shut down"))
	}
	_ = d.nc.FlushTimeout(time.Second)
	st := d.Stats()
	d.log.Info("dispatcher stopped", "dispatcher", d.cfg.ID, "served", st.Served, "failed", st.Failed,
		"retries", st.Retries, "log_dropped", st.LogDropped)
	if d.reqlog != nil {
		d.reqlog.stop()
	}
	return err
}

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

// remove takes t out of the heap if it is in it.
func (h *timerHeap) remove(t *timer) {
	if t.idx >= 0 && t.idx < len(*h) && (*h)[t.idx] == t {
		heap.Remove(h, t.idx)
	}
}
