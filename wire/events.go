package wire

import "time"

// Events: what dispatchers see happen, published for anyone watching the
// cluster (nats sub '<prefix>.events.>'). Each dispatcher publishes its
// own view, so that with several a worker's change may be told once by
// each. Events are best effort: a dispatcher drops them rather than slow
// its requests.

// Event kinds of a worker: its state changes (StateUp, StateDown,
// StateDraining, StateEjected) and an operator's drain and resume.
const (
	EventDrained = "drained"
	EventResumed = "resumed"
)

// Event kinds of a dispatcher.
const (
	EventStart = "start"
	EventStop  = "stop"
)

// Events matches every event.
func (s Subjects) Events() string { return s.Root() + ".events.>" }

// WorkerEvent is the subject of a worker's event:
// "<prefix>.events.worker.<id>.<kind>".
func (s Subjects) WorkerEvent(id, kind string) string {
	return s.Root() + ".events.worker." + id + "." + kind
}

// DispatcherEvent is the subject of a dispatcher's own event:
// "<prefix>.events.dispatcher.<id>.<kind>".
func (s Subjects) DispatcherEvent(id, kind string) string {
	return s.Root() + ".events.dispatcher." + id + "." + kind
}

// Event is the JSON payload of an event.
type Event struct {
	Kind       string    `json:"kind"`       // as in the subject's last token
	Time       time.Time `json:"time"`       // when the dispatcher saw it
	Dispatcher string    `json:"dispatcher"` // whose view it is
	Worker     string    `json:"worker,omitempty"`
	From       string    `json:"from,omitempty"` // a worker's state before a change
	// State is a drained or resumed worker's state from its heartbeats,
	// which the drain does not change; "" when not known yet.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Until is the end of an ejection.
	Until *time.Time `json:"until,omitempty"`
	// Version is a starting dispatcher's.
	Version string `json:"version,omitempty"`
}

// Control: an operator's requests to every dispatcher, as `bilancia status`
// asks each for its table. Every dispatcher answers with a CtlReply.
const (
	CtlDrain  = "drain"  // take CtlRequest.Worker out of rotation
	CtlResume = "resume" // put it back
	CtlList   = "list"   // only say which workers are drained
)

// Ctl is the subject of a control verb: "<prefix>.ctl.<verb>".
func (s Subjects) Ctl(verb string) string { return s.Root() + ".ctl." + verb }

// CtlAll matches every control subject, as dispatchers subscribe.
func (s Subjects) CtlAll() string { return s.Root() + ".ctl.*" }

// CtlRequest is the JSON payload of a drain or resume; a list request
// has none.
type CtlRequest struct {
	Worker string `json:"worker"`
}

// CtlReply is a dispatcher's answer to a control request. An invalid
// request gets an error reply (ErrorMsg) instead.
type CtlReply struct {
	Dispatcher string `json:"dispatcher"`
	Worker     string `json:"worker,omitempty"`
	// Known: the worker is in this dispatcher's table. A drain of a
	// worker not known yet applies when it appears.
	Known bool `json:"known,omitempty"`
	// Changed: the request changed this dispatcher's drain of the worker.
	Changed bool `json:"changed,omitempty"`
	// State is the worker's state from its heartbeats; "" unknown.
	State string `json:"state,omitempty"`
	// Drained lists every worker drained on this dispatcher, by id.
	Drained []string `json:"drained"`
}

// The NATS micro services (ADR-32) dispatchers and workers register as,
// each instance under its own id: `nats micro ls` lists them.
const (
	DispatcherService = "bilancia-dispatcher"
	WorkerService     = "bilancia-worker"
)

// MicroSubjects are the discovery subjects an instance of service
// answers: "$SRV.<verb>" for every service, "$SRV.<verb>.<service>" and
// "$SRV.<verb>.<service>.<id>".
func MicroSubjects(service string) []string {
	return []string{"$SRV.*", "$SRV.*." + service, "$SRV.*." + service + ".*"}
}
