// Package client sends calculation requests to Bilancia's dispatchers and
// waits for their replies. It is a library (Do) and the engine under the
// REPL and the bench tool.
//
// All attempts of one request share one reply subject under the client's
// own wildcard inbox, so the first reply of any attempt wins and later ones
// are dropped: a retry never shows a reply twice, and a slow first attempt
// still counts.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/bilancia/bilancia/wire"
)

// Errors returned by the client. Service errors are *wire.Error.
var (
	// ErrClosed is returned by Do after Close.
	ErrClosed = errors.New("client: closed")
	// ErrNoServer means no NATS server answered at the given URL.
	ErrNoServer = errors.New("client: no NATS server answered")
)

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	URL    string     // NATS URL(s), comma separated; "" = nats.DefaultURL
	Conn   *nats.Conn // use this connection instead of dialing; Close leaves it open
	Name   string     // Calc-Client header; "" = "client-<host>-<pid>"
	Prefix string     // subject prefix; "" = "calc"
	// Subject overrides where requests go ("" = <prefix>.request); bench
	// points it at the workers' direct queue-group subject.
	Subject string

	// Timeout is the deadline of a request when the caller's ctx has none.
	// 0 = 10s.
	Timeout time.Duration
	// AttemptTimeout is how long an attempt may stay unanswered before the
	// same request (same Calc-Request-Id) is sent again, in case the
	// dispatcher holding it died. The first attempt's reply still counts.
	// Each further attempt waits twice as long. 0 = 2s.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the sends of one request. 0 = 4; 1 = no retries.
	MaxAttempts int
	// RetryBudget is the fraction of in-flight requests that may be retries
	// at any moment, so retries cannot multiply load during an outage.
	// 0 = 0.2. At least MinRetries retries are always allowed.
	RetryBudget float64
	// MinRetries is the retry allowance below which the budget does not
	// apply. 0 = 10.
	MinRetries int

	// Options are extra nats.go options (credentials, TLS) when dialing.
	Options []nats.Option
}

// Result is a successful reply.
type Result struct {
	ID         string        // Calc-Request-Id
	Reply      wire.Reply    // the decoded body
	Worker     string        // Calc-Worker
	Attempts   int           // the dispatcher's Calc-Attempts (forwards it made)
	Sends      int           // how many times this client sent the request
	Latency    time.Duration // from first send to reply
	Dispatcher string        // Calc-Dispatcher
}

// ResultString is the result as a person reads it: numbers and booleans as
// JSON spells them, strings unquoted.
func (r *Result) ResultString() string {
	var s string
	if json.Unmarshal(r.Reply.Result, &s) == nil {
		return s
	}
	return string(r.Reply.Result)
}

// Stats are the client's counters.
type Stats struct {
	Requests, Retries, RetriesDenied uint64
}

// Client sends requests. It is safe for concurrent use.
type Client struct {
	cfg     Config
	nc      *nats.Conn
	ownConn bool
	subj    wire.Subjects
	reqSubj string
	inbox   string // "<inbox>." prefix of reply subjects
	sub     *nats.Subscription

	mu      sync.Mutex
	pending map[string]*call
	closed  bool
	done    chan struct{} // closed by Close: waiting calls end at once

	inflight atomic.Int64
	retrying atomic.Int64
	stats    struct{ requests, retries, denied atomic.Uint64 }
}

type call struct {
	ch chan *nats.Msg // buffered 1; gets the first reply only
}

// Connect dials NATS (unless cfg.Conn is set) and prepares the reply inbox.
func Connect(cfg Config) (*Client, error) {
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("client-%s-%d", host, os.Getpid())
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 2 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = 0.2
	}
	if cfg.MinRetries <= 0 {
		cfg.MinRetries = 10
	}
	c := &Client{cfg: cfg, subj: wire.Subjects{Prefix: cfg.Prefix}, pending: make(map[string]*call), done: make(chan struct{})}
	c.reqSubj = cfg.Subject
	if c.reqSubj == "" {
		c.reqSubj = c.subj.Request()
	}
	if cfg.Conn != nil {
		c.nc = cfg.Conn
	} else {
		url := cfg.URL
		if url == "" {
			url = nats.DefaultURL
		}
		opts := append([]nats.Option{
			nats.Name(cfg.Name),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(250 * time.Millisecond),
			nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
			nats.RetryOnFailedConnect(false),
		}, cfg.Options...)
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			return nil, fmt.Errorf("%w at %s: %v", ErrNoServer, url, err)
		}
		c.nc, c.ownConn = nc, true
	}
	c.inbox = c.nc.NewRespInbox()
	c.inbox = c.inbox[:strings.LastIndexByte(c.inbox, '.')+1]
	sub, err := c.nc.Subscribe(c.inbox+"*", c.onReply)
	if err != nil {
		c.closeConn()
		return nil, fmt.Errorf("client: subscribe inbox: %w", err)
	}
	sub.SetPendingLimits(-1, -1)
	c.sub = sub
	c.announce(c.subj.ClientConnect())
	return c, nil
}

// Conn is the NATS connection in use.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Name is the name sent in Calc-Client.
func (c *Client) Name() string { return c.cfg.Name }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{c.stats.requests.Load(), c.stats.retries.Load(), c.stats.denied.Load()}
}

func (c *Client) announce(subject string) {
	host, _ := os.Hostname()
	ip, _ := c.nc.GetClientIP()
	id, _ := c.nc.GetClientID()
	h := wire.ClientHello{Name: c.cfg.Name, Host: host, PID: os.Getpid(), ClientID: id, Version: wire.Version}
	if ip != nil {
		h.IP = ip.String()
	}
	b, _ := json.Marshal(h)
	_ = c.nc.Publish(subject, b)
}

func (c *Client) onReply(m *nats.Msg) {
	token := m.Subject[len(c.inbox):]
	c.mu.Lock()
	cl := c.pending[token]
	c.mu.Unlock()
	if cl == nil {
		return // a late reply to a request already answered
	}
	select {
	case cl.ch <- m:
	default: // a reply already waits; this one is a duplicate
	}
}

// isNoResponders tells the server's "no responders" status: nobody was
// subscribed to the request subject.
func isNoResponders(m *nats.Msg) bool {
	return len(m.Data) == 0 && m.Header != nil && m.Header.Get("Status") == "503"
}

// Do sends command and waits for its reply, retrying on "no responders"
// and on attempts left unanswered, within ctx's deadline (or cfg.Timeout).
// A service error comes back as *wire.Error; a request that gets no reply
// in time comes back as a *wire.Error with code 504.
func (c *Client) Do(ctx context.Context, command string) (*Result, error) {
	return c.DoBytes(ctx, []byte(command))
}

// DoBytes is Do for a payload already in bytes.
func (c *Client) DoBytes(ctx context.Context, payload []byte) (*Result, error) {
	start := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(c.cfg.Timeout)
	}
	id := uuid.NewString()
	token := nuid.Next()
	cl := &call{ch: make(chan *nats.Msg, 1)}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.pending[token] = cl
	c.mu.Unlock()
	c.inflight.Add(1)
	c.stats.requests.Add(1)
	retrying := false // counted in c.retrying
	defer func() {
		c.mu.Lock()
		delete(c.pending, token)
		c.mu.Unlock()
		c.inflight.Add(-1)
		if retrying {
			c.retrying.Add(-1)
		}
	}()

	send := func() error {
		m := nats.NewMsg(c.reqSubj)
		m.Reply = c.inbox + token
		m.Data = payload
		m.Header.Set(wire.HdrRequestID, id)
		m.Header.Set(wire.HdrClient, c.cfg.Name)
		m.Header.Set(wire.HdrTimeout, strconv.FormatInt(time.Until(deadline).Milliseconds(), 10))
		return c.nc.PublishMsg(m)
	}
	if err := send(); err != nil {
		return nil, c.sendErr(err)
	}
	sends := 1
	attemptWait := c.cfg.AttemptTimeout
	backoff := 5 * time.Millisecond
	// backingOff: the last answer was "no responders", and the next send
	// ends the backoff. noDispatcher: no dispatcher took the request, so
	// running out of time is a 503, not a 504.
	backingOff, noDispatcher := false, false
	// One timer serves both the deadline and the next send.
	nextSend := start.Add(attemptWait)
	timer := time.NewTimer(attemptWait)
	defer timer.Stop()
	rearm := func(now time.Time) { timer.Reset(min(nextSend.Sub(now), deadline.Sub(now))) }
	rearm(start)

	for {
		select {
		case m := <-cl.ch:
			if isNoResponders(m) {
				// No dispatcher listens right now (restarting, or a
				// reconnect in progress): back off and send again.
				backingOff, noDispatcher = true, true
				now := time.Now()
				nextSend = now.Add(jitter(backoff))
				backoff = min(backoff*2, 500*time.Millisecond)
				rearm(now)
				continue
			}
			return c.result(m, id, sends, start)
		case now := <-timer.C:
			if !now.Before(deadline) {
				return nil, c.timeoutErr(noDispatcher, start, sends)
			}
			if now.Before(nextSend) {
				rearm(now)
				continue
			}
			if !backingOff && sends >= c.cfg.MaxAttempts {
				nextSend = deadline // no more sends: wait for a reply
				rearm(now)
				continue
			}
			if !retrying {
				if !c.retryAllowed() {
					c.stats.denied.Add(1)
					nextSend = now.Add(attemptWait)
					rearm(now)
					continue
				}
				retrying = true
				c.retrying.Add(1)
			}
			if err := send(); err != nil {
				return nil, c.sendErr(err)
			}
			c.stats.retries.Add(1)
			sends++
			if backingOff {
				backingOff = false
			} else {
				attemptWait *= 2
			}
			nextSend = now.Add(attemptWait)
			rearm(now)
		case <-c.done:
			return nil, ErrClosed
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, c.timeoutErr(noDispatcher, start, sends)
			}
			return nil, ctx.Err()
		}
	}
}

func (c *Client) timeoutErr(noDispatcher bool, start time.Time, sends int) error {
	if noDispatcher {
		return wire.NewError(wire.CodeUnavailable, "no dispatcher is listening on "+c.reqSubj)
	}
	return wire.NewError(wire.CodeDeadline,
		fmt.Sprintf("no reply within %v after %d send(s)", time.Since(start).Round(time.Millisecond), sends))
}

// retryAllowed applies the retry budget: requests being retried may be at
// most RetryBudget of those in flight, or MinRetries.
func (c *Client) retryAllowed() bool {
	allowed := int64(c.cfg.RetryBudget * float64(c.inflight.Load()))
	return c.retrying.Load() < max(allowed, int64(c.cfg.MinRetries))
}

func (c *Client) sendErr(err error) error {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return ErrClosed
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		return wire.NewError(wire.CodeTooLarge, "request larger than the server's max payload")
	}
	return fmt.Errorf("client: send: %w", err)
}

func (c *Client) result(m *nats.Msg, id string, sends int, start time.Time) (*Result, error) {
	r := &Result{ID: id, Sends: sends, Latency: time.Since(start)}
	if m.Header != nil {
		r.Worker = m.Header.Get(wire.HdrWorker)
		r.Dispatcher = m.Header.Get(wire.HdrDispatcher)
		r.Attempts, _ = strconv.Atoi(m.Header.Get(wire.HdrAttempts))
	}
	if e := wire.ErrorFromMsg(m); e != nil {
		return r, e
	}
	if err := json.Unmarshal(m.Data, &r.Reply); err != nil {
		return r, wire.NewError(wire.CodeInternal, "reply is not valid JSON: "+err.Error())
	}
	if r.Reply.Error != nil {
		return r, r.Reply.Error
	}
	if r.Worker == "" {
		r.Worker = r.Reply.Worker
	}
	return r, nil
}

// Status asks every dispatcher for its view of the workers and returns the
// answers that arrive within wait after the first one (0 = 150ms).
func (c *Client) Status(ctx context.Context, wait time.Duration) ([]wire.Status, error) {
	if wait <= 0 {
		wait = 150 * time.Millisecond
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
	}
	inbox := c.nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := c.nc.PublishRequest(c.subj.Status(), inbox, nil); err != nil {
		return nil, err
	}
	var out []wire.Status
	var quiet <-chan time.Time
	for {
		select {
		case m := <-ch:
			if isNoResponders(m) {
				return nil, wire.NewError(wire.CodeUnavailable, "no dispatcher answers on "+c.subj.Status())
			}
			var s wire.Status
			if err := json.Unmarshal(m.Data, &s); err == nil {
				out = append(out, s)
			}
			if quiet == nil {
				quiet = time.After(wait)
			}
		case <-quiet:
			return out, nil
		case <-ctx.Done():
			if len(out) > 0 {
				return out, nil
			}
			return nil, wire.NewError(wire.CodeDeadline, "no dispatcher answered the status request")
		}
	}
}

// Close says goodbye to the dispatchers and closes the connection if the
// client dialed it. Requests waiting in Do end with ErrClosed or time out.
// Safe to call more than once.
func (c *Client) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.done)
	c.mu.Unlock()
	if c.nc.IsConnected() {
		// No Flush: closing the connection writes what is buffered, and
		// with the server just gone a Flush would wait 10 s for its PONG.
		// Reconnecting, there is nobody to say goodbye to.
		c.announce(c.subj.ClientDisconnect())
		_ = c.sub.Unsubscribe()
	}
	c.closeConn()
}

func (c *Client) closeConn() {
	if c.ownConn {
		c.nc.Close()
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
