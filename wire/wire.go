// Package wire holds Bilancia's wire contract: subjects, headers, message
// types and error codes shared by every role. It is the code form of
// docs/protocol.md; anything here is visible to users of the nats CLI.
package wire

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Version is the Bilancia version reported in heartbeats and status.
var Version = "0.1.0"

// DefaultPrefix is the subject prefix when --prefix is not set.
const DefaultPrefix = "calc"

// DispatcherQueue is the queue group dispatchers share on the request subject.
const DispatcherQueue = "dispatchers"

// WorkerQueue is the queue group workers join on the direct subject when they
// also serve requests without a dispatcher (used by bench --compare).
const WorkerQueue = "workers"

// Headers set by clients, dispatchers and workers.
const (
	HdrRequestID = "Calc-Request-Id"
	HdrClient    = "Calc-Client"
	// HdrTimeout is the client's remaining deadline in milliseconds when it
	// sent the request; a relative value so that clock skew does not matter.
	HdrTimeout  = "Calc-Timeout-Ms"
	HdrWorker   = "Calc-Worker"
	HdrAttempts = "Calc-Attempts"
	// HdrDispatcher names the dispatcher that relayed a reply.
	HdrDispatcher = "Calc-Dispatcher"
	// HdrProgress, "1" on a request, asks for progress messages: header-only
	// messages on the request's reply subject, carrying HdrProgress and the
	// ids of the requests still held (one HdrRequestID value each), that say
	// "still on it" until the reply. Without it only the reply is sent.
	HdrProgress = "Calc-Progress"
	// HdrCancel, on a header-only message to a worker's subject, names a
	// request whose answer has gone out: the worker stops computing it.
	HdrCancel = "Calc-Cancel"
	// HdrHedge, on a request, asks its dispatcher to also send it to a
	// second worker once it has waited that many milliseconds on one still
	// making progress (hedging), whatever the dispatcher's own setting. A
	// dispatcher directive: it is not forwarded.
	HdrHedge = "Calc-Hedge-Ms"
	// HdrClientReply, on a forward of a request whose client chose its
	// id, is the reply subject of the client's request. A worker returns
	// it with a reply it hands over (HandOver), and a dispatcher answers
	// with that reply only a resend to the same subject: a hand-over
	// answers only its own client. A dispatcher sets it on every forward,
	// whatever the client sent.
	HdrClientReply = "Calc-Client-Reply"

	HdrError     = "Nats-Service-Error"
	HdrErrorCode = "Nats-Service-Error-Code"
)

// Error codes, as in Nats-Service-Error-Code.
const (
	CodeBadRequest  = 400
	CodeTooLarge    = 413
	CodeInternal    = 500
	CodeUnavailable = 503
	CodeDeadline    = 504
)

// Subjects builds the subjects of one deployment from its prefix.
type Subjects struct {
	Prefix string // "" means DefaultPrefix
}

// Root is the prefix in use: Prefix, or DefaultPrefix when it is empty.
func (s Subjects) Root() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

// Request is where clients send requests (dispatchers' queue group).
func (s Subjects) Request() string { return s.Root() + ".request" }

// Worker is the subject of one worker.
func (s Subjects) Worker(id string) string { return s.Root() + ".worker." + id }

// Direct is the subject workers serve in a queue group when asked to, so
// that the same load can bypass the dispatcher for comparison.
func (s Subjects) Direct() string { return s.Root() + ".direct" }

// InBroker is where bench --compare's dispatcher in the broker's process
// takes requests, beside the usual dispatchers.
func (s Subjects) InBroker() string { return s.Root() + ".inbroker" }

// Heartbeat is where worker id publishes its heartbeats.
func (s Subjects) Heartbeat(id string) string { return s.Root() + ".heartbeat." + id }

// Heartbeats matches every worker's heartbeats.
func (s Subjects) Heartbeats() string { return s.Root() + ".heartbeat.*" }

// Discover asks every worker to heartbeat at once.
func (s Subjects) Discover() string { return s.Root() + ".discover" }

// Claim is where a live worker id answers, so that a second worker with
// the same id refuses to start; it answers on the probe's inbox,
// "<inbox>.<id>".
func (s Subjects) Claim(id string) string { return s.Root() + ".claim." + id }

// HandOver is where worker id hands over a reply whose dispatcher is gone
// (the broker said no one listens on its reply subject, or it did not
// acknowledge it), "<prefix>.orphan.<id>": every dispatcher receives it
// (HandOvers) and answers the client's resend of the request with it. The
// subject names the worker, so that the broker can hold each worker's
// credential to its own, and a dispatcher takes a hand-over only from the
// worker its Calc-Worker names.
func (s Subjects) HandOver(id string) string { return s.Root() + ".orphan." + id }
func (s Subjects) HandOvers() string         { return s.Root() + ".orphan.*" }

// Orphan is where workers handed over replies before HandOver named the
// worker; dispatchers no longer take them there. The broker's worker
// permissions still name it.
func (s Subjects) Orphan() string { return s.Root() + ".orphan" }

// Bounces matched the reply subjects workers gave long jobs' replies
// before those moved under each worker's inbox ("<inbox>.<n>"); only the
// broker's worker permissions still name it, until they grant the
// worker's inbox instead.
func (s Subjects) Bounces(token string) string { return s.Root() + ".orphan." + token + ".*" }

// Status answers with a dispatcher's view of the workers.
func (s Subjects) Status() string { return s.Root() + ".status" }

// ClientConnect and ClientDisconnect carry a client's hello and goodbye, so
// that dispatchers can log who connects from where.
func (s Subjects) ClientConnect() string    { return s.Root() + ".client.connect" }
func (s Subjects) ClientDisconnect() string { return s.Root() + ".client.disconnect" }

// Worker states.
const (
	StateUp       = "up"
	StateDraining = "draining"
	StateDown     = "down"
	StateEjected  = "ejected"
)

// ValidID tells whether s can be a worker id: one subject token of
// printable ASCII, at most 64 bytes. Ids name subjects (<prefix>.worker.<id>,
// the dispatcher's reply subject for the worker), so a dot, a wildcard or
// white space in one would change what those subjects match.
func ValidID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '.' || c == '*' || c == '>' || c > 126 {
			return false
		}
	}
	return true
}

// ValidSubject tells whether s is a literal subject a dispatcher can serve:
// dot-separated ValidID tokens, so no wildcard and no empty token.
func ValidSubject(s string) bool {
	if len(s) > 255 {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if !ValidID(tok) {
			return false
		}
	}
	return true
}

// Heartbeat is what a worker publishes every interval.
type Heartbeat struct {
	ID          string `json:"id"`
	Subject     string `json:"subject"`
	State       string `json:"state"`
	Seq         uint64 `json:"seq"`
	IntervalMS  int64  `json:"interval_ms"`
	Inflight    int64  `json:"inflight"`
	Served      uint64 `json:"served"`
	Errors      uint64 `json:"errors"`
	Concurrency int    `json:"concurrency"`
	// ProgressMS is the interval of the worker's progress messages; 0: it
	// sends none, and a dispatcher falls back on an attempt timeout.
	ProgressMS int64     `json:"progress_ms,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	Version    string    `json:"version"`
	Host       string    `json:"host,omitempty"`
}

// Error is a business error: it travels in a reply with its code, never as
// a transport failure.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return strconv.Itoa(e.Code) + " " + e.Message }

// NewError returns a business error with its code.
func NewError(code int, msg string) *Error { return &Error{Code: code, Message: msg} }

// Reply is the JSON body of every reply, success or error.
type Reply struct {
	ID     string            `json:"id,omitempty"`
	Op     string            `json:"op,omitempty"`
	Args   []json.RawMessage `json:"args,omitempty"`
	Result json.RawMessage   `json:"result,omitempty"`
	Worker string            `json:"worker,omitempty"`
	Error  *Error            `json:"error,omitempty"`
}

// ErrorMsg builds an error reply with the service error headers and the same
// error in its JSON body.
func ErrorMsg(id string, e *Error) *nats.Msg {
	m := nats.NewMsg("")
	m.Header.Set(HdrError, e.Message)
	m.Header.Set(HdrErrorCode, strconv.Itoa(e.Code))
	if id != "" {
		m.Header.Set(HdrRequestID, id)
	}
	m.Data, _ = json.Marshal(Reply{ID: id, Error: e})
	return m
}

// ErrorFromMsg returns the service error a reply carries in its headers, or
// nil for a successful reply.
func ErrorFromMsg(m *nats.Msg) *Error {
	if m.Header == nil {
		return nil
	}
	code := m.Header.Get(HdrErrorCode)
	if code == "" {
		return nil
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		n = CodeInternal
	}
	return &Error{Code: n, Message: m.Header.Get(HdrError)}
}

// WorkerStatus is one row of a dispatcher's worker table.
type WorkerStatus struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	// Silent: it holds requests yet sent no reply or progress message for
	// too long, so this dispatcher sends it nothing new until it is heard
	// again, whatever its State (its heartbeats may not have stopped yet).
	Silent        bool      `json:"silent,omitempty"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	Served        uint64    `json:"served"`    // as the worker reports it
	Forwarded     uint64    `json:"forwarded"` // by this dispatcher
	Inflight      int64     `json:"inflight"`  // this dispatcher's pending forwards
	Errors        uint64    `json:"errors"`
	Ejections     int       `json:"ejections,omitempty"`
	// Drained: an operator took it out of rotation (bilancia ctl drain);
	// its State still says what its heartbeats say.
	Drained bool `json:"drained,omitempty"`
	// What this dispatcher's choice of worker reads of it: the
	// concurrency it announces, the EWMA of its successes' latency and
	// the peak EWMA of its replies' cost in milliseconds, the share of its
	// replies that failed (0..1), the share of its turns it takes (0..1;
	// absent for a worker never judged) and why it takes less: "ok",
	// "warming" (slow start), "saturated", "slow" or "failing".
	Concurrency int     `json:"concurrency,omitempty"`
	LatencyMS   float64 `json:"latency_ms,omitempty"`
	PeakMS      float64 `json:"peak_ms,omitempty"`
	ErrorRate   float64 `json:"error_rate,omitempty"`
	Weight      float64 `json:"weight,omitempty"`
	Verdict     string  `json:"verdict,omitempty"`
}

// Status is a dispatcher's answer on the status subject.
type Status struct {
	Dispatcher string    `json:"dispatcher"`
	Version    string    `json:"version"`
	StartedAt  time.Time `json:"started_at"`
	Inflight   int64     `json:"inflight"`
	Served     uint64    `json:"served"`
	Failed     uint64    `json:"failed"`
	Strategy   string    `json:"strategy"`
	Subject    string    `json:"subject,omitempty"` // where it takes requests
	// Total is how many workers the table holds, and Counts how many
	// are in each state: the whole table even when Workers is cut.
	Total  int            `json:"total"`
	Counts map[string]int `json:"counts,omitempty"`
	// Truncated says that Workers holds only the first rows, in id
	// order, because the whole table would not fit in one message.
	Truncated bool           `json:"truncated,omitempty"`
	Workers   []WorkerStatus `json:"workers"`
	// Drained lists the workers an operator drained on this dispatcher,
	// by id, those not in its table too.
	Drained []string `json:"drained,omitempty"`
}

// ClientHello is what a client announces when it connects and leaves.
// Every field is the client's own claim: nothing on the bus checks it.
type ClientHello struct {
	Name     string `json:"name"`
	Host     string `json:"host,omitempty"`
	PID      int    `json:"pid,omitempty"`
	IP       string `json:"ip,omitempty"`        // as the client says the NATS server sees it
	ClientID uint64 `json:"client_id,omitempty"` // the NATS connection id, as the client says
	Version  string `json:"version,omitempty"`
}
