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
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
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
	// 0 = DefaultTimeout beyond the time the op asks for (sleep N, spin N:
	// calc.Takes), so that every op a worker accepts can finish.
	Timeout time.Duration
	// NoDispatcherWait is how long a request is sent again while the
	// broker says that no dispatcher listens (no responders) and none has
	// ever answered this client, before it fails with 503: a client
	// started with no dispatcher learns it at once, while one whose
	// dispatcher is restarting keeps trying until its deadline. 0 = 1s.
	NoDispatcherWait time.Duration
	// ProgressSilence: requests ask for progress messages (Calc-Progress:
	// 1), which the dispatcher holding one sends every 100ms until the
	// reply; a request whose dispatcher stays silent this long (no reply,
	// no progress message) is sent again, in case the dispatcher died,
	// however long the job. (A request waiting when the connection comes
	// back after it was lost is sent again at once.) 0 = 250ms. <0: ask for none, and resend after
	// AttemptTimeout instead (a dispatcher that sends no progress messages
	// would otherwise see every request longer than ProgressSilence again).
	ProgressSilence time.Duration
	// AttemptTimeout, when ProgressSilence < 0, is how long an attempt may
	// stay unanswered before the same request (same Calc-Request-Id) is
	// sent again, in case the dispatcher holding it died. The first
	// attempt's reply still counts. Each further attempt waits twice as
	// long. 0 = 2s.
	AttemptTimeout time.Duration
	// MaxAttempts bounds the sends of one request. 0 = 4; 1 = no retries.
	// Above 1, with progress messages, a request that no dispatcher has
	// yet said it holds is sent again after each silence until its
	// deadline (a route or broker cut off may swallow sends): a
	// dispatcher that holds it already takes the resend as the same
	// request.
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
	// InboxPrefix is where replies come back when dialing, e.g.
	// "_INBOX_CLIENT.alice" for a client credential of broker --auth,
	// which may subscribe nowhere else (docs/auth.md). "" = nats.go's
	// "_INBOX", or what Options set. With Conn, the connection's own.
	InboxPrefix string
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
	budget  natsutil.RetryBudget // cfg.RetryBudget and MinRetries

	mu      sync.Mutex
	pending map[string]*call
	closed  bool
	done    chan struct{} // closed by Close: waiting calls end at once
	// reconnected is closed, and replaced, each time the connection
	// comes back after it was lost (watchReconnects).
	reconnected chan struct{}
	stopWatch   func() // ends watchReconnects

	// served: a dispatcher has answered this client (a reply or a
	// progress message), so "no responders" means it is away for now.
	served   atomic.Bool
	inflight atomic.Int64
	retrying atomic.Int64
	pgap     atomic.Int64 // nanoseconds: the average gap between a request's progress messages
	stats    struct{ requests, retries, denied atomic.Uint64 }
}

type call struct {
	ch    chan *nats.Msg // buffered 1; gets the first reply only
	heard atomic.Int64   // unix nanoseconds of the last progress message
}

// Connect dials NATS (unless cfg.Conn is set) and prepares the reply inbox.
func Connect(cfg Config) (*Client, error) {
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("client-%s-%d", host, os.Getpid())
	}
	if cfg.NoDispatcherWait <= 0 {
		cfg.NoDispatcherWait = time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 2 * time.Second
	}
	if cfg.ProgressSilence == 0 {
		cfg.ProgressSilence = 250 * time.Millisecond
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
	c.budget = natsutil.RetryBudget{Ratio: cfg.RetryBudget, Min: cfg.MinRetries}
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
		opts := append(natsutil.Options(cfg.Name, nil), nats.RetryOnFailedConnect(false))
		opts = append(opts, cfg.Options...)
		if cfg.InboxPrefix != "" {
			opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
		}
		nc, err := nats.Connect(url, opts...)
		if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) {
			return nil, fmt.Errorf("client: the broker at %s refused the connection's credentials, or their absence (docs/auth.md): %w", url, err)
		}
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
	// A broker that does not let us read our inbox says so asynchronously:
	// ask now rather than let every request time out.
	if c.nc.FlushTimeout(5*time.Second) == nil {
		if err := c.nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) {
			c.closeConn()
			return nil, fmt.Errorf("client: the broker refuses replies under %s*: %w (a client credential of broker --auth has an inbox prefix of its own: see docs/auth.md)", c.inbox, err)
		}
	}
	c.watchReconnects()
	c.announce(c.subj.ClientConnect())
	return c, nil
}

// watchReconnects lets the requests waiting know when the connection
// comes back after it was lost, perhaps on another broker: a reply or a
// progress message may have been lost meanwhile, and the dispatcher with
// the broker it left, so they are sent again at once rather than after a
// silence (DoBytes).
func (c *Client) watchReconnects() {
	c.reconnected = make(chan struct{})
	c.stopWatch = natsutil.OnReconnect(c.nc, func() {
		c.mu.Lock()
		close(c.reconnected)
		c.reconnected = make(chan struct{})
		c.mu.Unlock()
	})
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
	if !c.served.Load() && !natsutil.IsNoResponders(m) {
		c.served.Store(true)
	}
	if m.Header != nil && m.Header[wire.HdrProgress] != nil && len(m.Data) == 0 {
		// Still held: a sign of life, not a reply.
		now := time.Now().UnixNano()
		if prev := cl.heard.Swap(now); prev != 0 {
			c.learnGap(now - prev)
		}
		return
	}
	select {
	case cl.ch <- m:
	default: // a reply already waits; this one is a duplicate
	}
}

// learnGap feeds the gap between two progress messages of one request
// into the average; a gap over 2s is a pause, not a pace.
func (c *Client) learnGap(gap int64) {
	if gap <= 0 || gap > int64(2*time.Second) {
		return
	}
	avg := c.pgap.Load()
	if avg == 0 {
		avg = gap
	}
	c.pgap.Store(avg + (gap-avg)/8)
}

// silence is how long a request's dispatcher may stay silent before the
// request is sent again: ProgressSilence, or 2.5 of the progress
// messages' average gap if that is longer (a dispatcher, broker or
// machine running late), up to 3 × ProgressSilence.
func (c *Client) silence() time.Duration {
	base := c.cfg.ProgressSilence
	return min(max(base, 5*time.Duration(c.pgap.Load())/2), 3*base)
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
			if natsutil.IsNoResponders(m) {
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
	c.stopWatch()
	c.closeConn()
}

func (c *Client) closeConn() {
	if c.ownConn {
		c.nc.Close()
	}
}
