package flight

import "time"

// Config is the core's policy settings. The zero value of a duration
// turns its feature off, as documented per field.
type Config struct {
	// ID names the dispatcher in the errors it answers.
	ID string
	// MaxInflight bounds the requests in flight; past it a request is
	// answered 503 at once. 0 = no bound.
	MaxInflight int
	// MaxInflightBytes bounds what the requests in flight cost, each its
	// Request.Cost; past it, 503 at once. 0 = no bound.
	MaxInflightBytes int64
	// MaxClientInflight bounds the requests of one client (its
	// Request.Share) in flight, so that one client cannot hold every
	// worker slot; past it, that client is answered 503 at once. 0 = no
	// bound.
	MaxClientInflight int
	// MaxAttempts bounds the workers tried for one request because of
	// timeouts and faults. 0 = 1.
	MaxAttempts int
	// AttemptTimeout is how long an attempt on a worker that sends no
	// progress messages may stay unanswered before it has failed.
	AttemptTimeout time.Duration
	// HedgeAfter: a request waiting this long on a worker still making
	// progress also goes to the next worker. 0 = never (unless the
	// request asks, Request.Hedge).
	HedgeAfter time.Duration
	// MinHedge is the least hedge a client may ask for (Request.Hedge):
	// a lower one is raised to it. 0 = no floor.
	MinHedge time.Duration
	// ProgressEvery is how often a client that asked for progress
	// messages gets one. 0 = never.
	ProgressEvery time.Duration
	// MuteFor is how long a worker found silent is skipped by the picks,
	// unless heard again meanwhile.
	MuteFor time.Duration
	// HoldFor is how long requests are held (parked) when the last live
	// workers fell silent at once. 0 = never hold.
	HoldFor time.Duration
	// Budget bounds the requests being retried after a timeout.
	Budget Budget
	// OrphanKeep is how long a reply handed over waits for its request's
	// resend; 0 = DefaultOrphanKeep. OrphanBytes and OrphanMax bound the
	// replies kept, in bytes (each its Event.Size and the core's own
	// overhead) and in number; 0 = DefaultOrphanBytes, DefaultOrphanMax.
	OrphanKeep  time.Duration
	OrphanBytes int
	OrphanMax   int
	// Bugs: for the simulator's tests only; the zero value has none.
	Bugs Bugs
}

// Budget bounds retries, so that they cannot multiply the load during an
// outage: the requests being retried may be at most Ratio of those in
// flight, or Min, whichever is more. The zero value allows none.
type Budget struct {
	Ratio float64
	Min   int
}

// Allows tells whether one more request may be retried while retrying of
// inflight requests already are.
func (b Budget) Allows(inflight, retrying int) bool {
	return retrying < max(int(b.Ratio*float64(inflight)), b.Min)
}

// Worker is the core's record of one worker. The shell makes one per
// worker it knows (New Worker) and keeps it as long as it keeps the
// worker; the core reads and writes it only inside Step, so the shell
// reads its exported fields only under the lock it holds Step under.
type Worker struct {
	ID  string
	Ref any // the shell's own record of the worker, untouched by the core

	// progress is its progress interval, from its heartbeats (EvWorkerUp,
	// EvProgressEvery); 0: it sends no progress messages.
	progress time.Duration
	inflight int // attempts open on it
	// Signs of life beside its heartbeats: when it was last heard (a
	// reply or a progress message), until when it is mute (silent past
	// its silence while it held an attempt), and its progress ticks'
	// average gap.
	heard, muteUntil, beat, gap int64
	atts                        []*Attempt // its open attempts, in no order
}

// Inflight is how many attempts are open on w.
func (w *Worker) Inflight() int { return w.inflight }

// Progress is w's progress interval, 0 if it sends none.
func (w *Worker) Progress() time.Duration { return w.progress }

// Pool is the core's view of the shell's membership: the workers in
// rotation, and the suspects (down only because their heartbeats
// stopped), which are worth a try when none is in rotation.
type Pool interface {
	// Pick returns a worker for an attempt, one in rotation or else a
	// suspect, never one skip.Skips; nil when none is left. It is
	// called inside Step: it must not call the core.
	Pick(skip *Skip) *Worker
	// AnyLive tells whether a worker in rotation is not skipped.
	AnyLive(skip *Skip) bool
	// Inflight tells that n attempts are now open on w, for a picker
	// that weighs load, or the status, read outside the core.
	Inflight(w *Worker, n int)
}

// Skip says which workers a pick passes over: those a request tried
// already (since it was last resumed), and with Mute those fallen
// silent or going quiet. The core fills it before each pick.
type Skip struct {
	Mute  bool
	now   int64
	tried []*Worker
}

// Skips tells whether the pick passes over w.
func (s *Skip) Skips(w *Worker) bool {
	if s.Mute && (w.mutedAt(s.now) || (len(s.tried) > 0 && quiet(w, s.now))) {
		return true
	}
	for _, t := range s.tried {
		if t == w {
			return true
		}
	}
	return false
}

// Request is one client request. The shell makes it and fills the
// fields above the line before EvRequest; the core owns the rest. Ref is
// the shell's own, untouched by the core.
type Request struct {
	ID       string        // Calc-Request-Id, the client's or one drawn by the shell
	Reply    string        // the client's reply subject
	Client   string        // Calc-Client: with Reply, who may be answered with a kept reply
	Keyed    bool          // the client chose the id: a resend of it joins this request
	Progress bool          // the client asked for progress messages
	Hedge    time.Duration // the client's Calc-Hedge-Ms; 0 = Config.HedgeAfter
	Timeout  time.Duration // the request's time, from now; capped by the shell
	Cost     int64         // what it costs the shell in memory while in flight
	Share    string        // the client it counts against for MaxClientInflight; "" none
	Ref      any
	// ----
	state    ReqState
	start    int64
	deadline int64
	tried    []*Worker // workers tried, in order
	from     int       // tried[from:] are skipped; set when a parked request resumes
	open     []*Attempt
	timeouts int  // attempts that timed out
	retrying bool // counted among the requests being retried (the budget)
	dl       timer
	idx      int // in Core.reqs
	pidx     int // in Core.parked, while parked

	first    Attempt // room for the common case, one attempt
	triedBuf [2]*Worker
	openBuf  [2]*Attempt
}

// State is r's state.
func (r *Request) State() ReqState { return r.state }

// Deadline is when r's time runs out, on the caller's clock.
func (r *Request) Deadline() int64 { return r.deadline }

// Start is when r arrived.
func (r *Request) Start() int64 { return r.start }

// Tried are the workers r went to, in order; read it under the shell's
// lock, or once r is done.
func (r *Request) Tried() []*Worker { return r.tried }

// Attempt is one forward of a request to one worker.
type Attempt struct {
	req    *Request
	w      *Worker
	tok    uint64
	state  AttState
	widx   int   // in w.atts
	shared bool  // its reply comes on the worker's shared subject, keyed by request id
	to     timer // its watch: silence, hedge, or the attempt timeout
	// sent and heard: when it was forwarded, and its worker's last sign
	// of life for it.
	sent, heard int64
	// silence: how long its worker may stay silent on it, from the
	// worker's progress interval; 0: the worker sends no progress, and
	// the attempt timeout applies.
	silence time.Duration
}

// EventKind names an event.
type EventKind uint8

// The events: everything that changes a request's life comes in as one.
const (
	EvNone EventKind = iota
	// EvRequest: Req arrived (its fields above the line filled in).
	EvRequest
	// EvReply: a worker's reply to the attempt Token or, with Token 0,
	// to the one of request ID on worker Worker's shared subject. Code is
	// its error code (0 for a result), Payload the shell's message, to
	// relay; AckTo, when set, is where its worker waits to hear that it
	// was taken (a long job's reply).
	EvReply
	// EvProgress: a progress message for attempt Token or, with Token 0,
	// for the attempts of IDs on worker Worker's shared subject.
	EvProgress
	// EvNoResponders: the broker found no subscriber for the attempt
	// Token or, with Token 0, for a forward to worker Worker.
	EvNoResponders
	// EvSendFailed: the forward of attempt Token could not be published:
	// the request is answered Code, Msg.
	EvSendFailed
	// EvWorkerUp: W came (back) into rotation, with progress interval
	// Every.
	EvWorkerUp
	// EvProgressEvery: W announces a new progress interval, Every.
	EvProgressEvery
	// EvWorkerDown: W left rotation for Cause; NoneLive says no worker is
	// in rotation any more.
	EvWorkerDown
	// EvOrphan: a reply handed over on the orphan subject for request
	// ID by worker Worker, Payload the message (a copy the core may keep),
	// Code its error code, Size what keeping it costs; Size 0: not a
	// reply worth keeping (no payload, bad headers), refused. Client, if
	// set, is the reply subject of the request it answers, as the forward
	// named it: it answers a request to that subject alone.
	EvOrphan
	// EvTick: time passed; timers due at Now fire. Backlog says the
	// shell has messages received and not yet handled, so that silence
	// says nothing yet.
	EvTick
	// EvShutdown: every request still open is answered 503.
	EvShutdown
)

// DownCause is why a worker left rotation.
type DownCause uint8

const (
	DownSilent       DownCause = iota // its heartbeats stopped: maybe a partition
	DownNoResponders                  // the broker has no subscriber for it
	DownLeft                          // it drained and left, or an operator or ejection took it out
)

// Event is one thing that happened, at Now on the caller's clock
// (nanoseconds). Only the fields its Kind names are read.
type Event struct {
	Kind     EventKind
	Now      int64
	Req      *Request
	Token    uint64
	Worker   string // a worker's id, on its shared subject
	ID       string // a request id
	Client   string // a client's reply subject
	IDs      []string
	W        *Worker
	Code     int
	Msg      string
	Payload  any
	AckTo    string
	Size     int
	Every    time.Duration
	Cause    DownCause
	NoneLive bool
	Backlog  bool
}

// ActionKind names an action.
type ActionKind uint8

// The actions: everything the shell does for a request, it does because
// the core said so.
const (
	ActNone ActionKind = iota
	// ActForward: publish Req to W, attempt Token, with LeftMS to its
	// deadline; Shared: on W's shared reply subject, else on one of the
	// token's own.
	ActForward
	// ActRelay: answer Req with Payload (a worker's reply, Code its error
	// code) from worker Worker, after Attempts forwards.
	ActRelay
	// ActError: answer Req with error Code, Msg, after Attempts forwards.
	ActError
	// ActProgress: tell Req's client it is still held.
	ActProgress
	// ActCancel: tell W that Req was answered.
	ActCancel
	// ActAck: tell the worker waiting on Subject that its reply was taken.
	ActAck
	// ActWake: call EvTick at At.
	ActWake
	// ActWorkerGone: W has no subscriber: take it out of rotation
	// (the shell answers with EvWorkerDown).
	ActWorkerGone
	// ActFailure: count a failure against W (Msg: why); ActSuccess: a
	// good reply from W. For a reply (a fault or not), At is when its
	// attempt was sent and Code its code, so that a picker can learn
	// the worker's latency; for a timeout At is 0.
	ActFailure
	ActSuccess
	// ActSilent: W fell silent on Attempts requests, sent on.
	ActSilent
	// ActHold: requests are held for At nanoseconds; Msg says why.
	ActHold
	// ActResume: Attempts parked requests go out again.
	ActResume
)

// Action is one thing for the shell to do. Only the fields its Kind names
// are set.
type Action struct {
	Kind     ActionKind
	Req      *Request
	W        *Worker
	Token    uint64
	Shared   bool
	LeftMS   int64
	Payload  any
	Worker   string
	Code     int
	Msg      string
	Attempts int
	Subject  string
	At       int64
}
