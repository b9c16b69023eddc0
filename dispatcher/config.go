package dispatcher

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Config configures a Dispatcher. Zero values mean the defaults of
// DefaultConfig, or those each field's comment gives.
type Config struct {
	Conn   *nats.Conn // required; the dispatcher does not close it
	ID     string     // "" = "d-" and 16 random hex digits (64 bits: never the same twice in practice)
	Prefix string     // "" = "calc"
	// Subject is where requests come in, in the dispatchers' queue group;
	// "" = <prefix>.request. Another subject lets a dispatcher with other
	// settings run beside the usual ones, on the same workers.
	Subject string
	// HeartbeatConn, if set, carries the workers' heartbeats instead of
	// Conn, so that they can be read in batches (PacedDialer) without
	// delaying requests. The dispatcher does not close it.
	HeartbeatConn *nats.Conn
	// SideConn, if set, carries what anyone may flood and no request waits
	// on (hand-overs, status requests, hellos) instead of Conn, so that a
	// flood of them cannot slow the request path, nor get Conn cut off by
	// the broker as a slow consumer. The dispatcher does not close it.
	SideConn *nats.Conn
	// Heartbeat is the workers' heartbeat interval. 0 = 1s.
	Heartbeat time.Duration
	// DeadAfter marks a silent worker down. 0 = 3 × Heartbeat.
	DeadAfter time.Duration
	// RequestTimeout is a request's deadline when the client sends none
	// (a plain NATS request). 0 = 35s: the longest op a stock worker
	// accepts (sleep, 30s) and room for the hop and a queue.
	RequestTimeout time.Duration
	// MaxRequestTimeout caps the deadline a client may ask for. 0 = 5m.
	MaxRequestTimeout time.Duration
	// MaxClientInflight bounds the requests one client may have in
	// flight through this dispatcher, so that one client cannot hold
	// every worker slot; beyond it, 503 at once. A client is its
	// credential's inbox under broker --auth, else its Calc-Client, else
	// its connection's request inbox (limits.go). 0 = no bound.
	MaxClientInflight int
	// MinHedge is the least Calc-Hedge-Ms a client's request is hedged
	// at: a lower value is raised to it. 0 = 250ms.
	MinHedge time.Duration
	// AttemptTimeout is how long a worker that sends no progress messages
	// (no progress_ms in its heartbeat) may stay silent before the request
	// is also sent to the next worker (the first attempt stays open).
	// A worker that sends them has failed an attempt after
	// flight.SilentAfterBeats of its progress intervals without a sign of life
	// (400ms at its default 100ms), however long the job. 0 = 1s.
	AttemptTimeout time.Duration
	// HedgeAfter, if set, also sends a request to the next worker once it
	// has waited this long on a worker that is still making progress
	// (hedging: the first attempt stays open, the first reply wins, and
	// the worker is not blamed). 0 = never: a slow job runs once.
	HedgeAfter time.Duration
	// ProgressInterval is how often a client that asked for progress
	// messages (Calc-Progress: 1) hears that its request is still held, once
	// it has been held that long. 0 = 100ms.
	ProgressInterval time.Duration
	// HoldFor is how long a dispatcher whose last live workers all fell
	// silent (their heartbeats stopped; no "no responders", no drain)
	// holds the requests that find no worker, in case it is cut off from
	// them by a partition, before answering 503 (hold.go). 0 = 2 ×
	// DeadAfter; <0 = never: 503 at once.
	HoldFor time.Duration
	// MaxAttempts bounds the workers tried for one request because of
	// silence, hedging or 5xx replies; "no responders" and workers declared
	// down do not count. 0 = 3.
	MaxAttempts int
	// RetryBudget is the fraction of in-flight requests that may be
	// retried on a timeout at once, so that retries cannot multiply load
	// during an outage; MinRetries are always allowed. 0 = 0.2 and 10.
	RetryBudget float64
	MinRetries  int
	// MaxInflight caps requests in flight; beyond it the dispatcher answers
	// 503 at once instead of queueing. 0 = 10000.
	MaxInflight int
	// MaxInflightBytes caps what the requests in flight cost the
	// dispatcher in memory: payloads, headers, reply subjects and each
	// request's own overhead; beyond it, 503 at once. 0 = 256 MiB.
	MaxInflightBytes int64
	// MaxWorkers caps the table of workers: a heartbeat from a new id
	// when it is full takes the place of a worker that is down, or is
	// refused and logged. It bounds the memory and the status reply that
	// heartbeats from anyone can grow. 0 = 10000.
	MaxWorkers int
	// InboxPrefixes are the reply subjects' prefixes accepted beyond
	// wire.DefaultInboxPrefixes ("_INBOX." and "_INBOX_CLIENT."): those
	// of clients, and of workers' bounce inboxes, set with their own
	// --inbox-prefix. A request whose reply subject is under none of them
	// is refused unanswered (replies.go). Each must be a literal subject
	// outside Prefix and the "$" subjects. nil = none beyond the defaults.
	InboxPrefixes []string
	// Strategy is RoundRobin, PeakEWMA or LeastInflight. "" = RoundRobin.
	Strategy string
	// Outlier tunes passive outlier detection; its zero fields mean the
	// defaults its comment gives.
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
	// 0 = 16384.
	LogQueue int
}

// OutlierConfig tunes passive outlier detection: a worker that fails
// Consecutive times in a row (timeouts or 5xx replies) is taken out of
// rotation for BaseEjection × the number of times it was ejected, capped
// at MaxEjection. At most half of the workers are ever ejected at once.
type OutlierConfig struct {
	Consecutive  int           // 0 = 5; <0 disables outlier detection
	BaseEjection time.Duration // 0 = 5s
	MaxEjection  time.Duration // 0 = 60s
}

// deadAfterBeats is how many heartbeats a worker may miss before it is
// down, when Config.DeadAfter is not set.
const deadAfterBeats = 3

// DefaultConfig returns the settings for a real run: every default in one
// place. Conn must still be set; ID, Subject, HeartbeatConn, SideConn and the
// loggers are derived from the other fields by New when left empty.
func DefaultConfig() Config {
	const heartbeat = time.Second
	return Config{
		Prefix:            wire.DefaultPrefix,
		Heartbeat:         heartbeat,
		DeadAfter:         deadAfterBeats * heartbeat,
		HoldFor:           2 * deadAfterBeats * heartbeat,
		RequestTimeout:    35 * time.Second,
		MaxRequestTimeout: 5 * time.Minute,
		AttemptTimeout:    time.Second,
		MinHedge:          250 * time.Millisecond,
		ProgressInterval:  100 * time.Millisecond,
		MaxAttempts:       3,
		RetryBudget:       0.2,
		MinRetries:        10,
		MaxInflight:       10000,
		MaxInflightBytes:  256 << 20,
		MaxWorkers:        10000,
		Strategy:          RoundRobin,
		Outlier: OutlierConfig{
			Consecutive:  5,
			BaseEjection: 5 * time.Second,
			MaxEjection:  60 * time.Second,
		},
		Tick:     5 * time.Millisecond,
		LogQueue: 1 << 14,
	}
}

// orDefault sets *v to def when it is zero or negative.
func orDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// withDefaults returns c with its zero fields filled from DefaultConfig
// and the derived ones set: DeadAfter from Heartbeat, Subject from Prefix,
// HeartbeatConn from Conn, a random ID.
func (c Config) withDefaults() Config {
	def := DefaultConfig()
	if c.ID == "" {
		c.ID = fmt.Sprintf("d-%016x", rand.Uint64())
	}
	if c.Prefix == "" {
		c.Prefix = def.Prefix
	}
	if c.Subject == "" {
		c.Subject = wire.Subjects{Prefix: c.Prefix}.Request()
	}
	if c.HeartbeatConn == nil {
		c.HeartbeatConn = c.Conn
	}
	if c.SideConn == nil {
		c.SideConn = c.Conn
	}
	orDefault(&c.Heartbeat, def.Heartbeat)
	orDefault(&c.DeadAfter, deadAfterBeats*c.Heartbeat)
	if c.HoldFor == 0 {
		c.HoldFor = 2 * c.DeadAfter
	}
	orDefault(&c.RequestTimeout, def.RequestTimeout)
	orDefault(&c.MaxRequestTimeout, def.MaxRequestTimeout)
	orDefault(&c.AttemptTimeout, def.AttemptTimeout)
	orDefault(&c.MinHedge, def.MinHedge)
	orDefault(&c.ProgressInterval, def.ProgressInterval)
	orDefault(&c.MaxAttempts, def.MaxAttempts)
	orDefault(&c.RetryBudget, def.RetryBudget)
	orDefault(&c.MinRetries, def.MinRetries)
	orDefault(&c.MaxInflight, def.MaxInflight)
	orDefault(&c.MaxInflightBytes, def.MaxInflightBytes)
	orDefault(&c.MaxWorkers, def.MaxWorkers)
	if c.Strategy == "" {
		c.Strategy = def.Strategy
	}
	c.Outlier = c.Outlier.withDefaults()
	orDefault(&c.Tick, def.Tick)
	orDefault(&c.LogQueue, def.LogQueue)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RequestLogger == nil {
		c.RequestLogger = c.Logger
	}
	return c
}

// withDefaults returns o with its zero fields filled from DefaultConfig. A
// negative Consecutive stays: it turns detection off.
func (o OutlierConfig) withDefaults() OutlierConfig {
	def := DefaultConfig().Outlier
	if o.Consecutive == 0 {
		o.Consecutive = def.Consecutive
	}
	orDefault(&o.BaseEjection, def.BaseEjection)
	orDefault(&o.MaxEjection, def.MaxEjection)
	return o
}

// retryBudget is the budget for timeout retries that c allows.
func (c Config) retryBudget() natsutil.RetryBudget {
	return natsutil.RetryBudget{Ratio: c.RetryBudget, Min: c.MinRetries}
}
