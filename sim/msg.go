package sim

import (
	"fmt"
	"strings"
)

// Kind is what a message is, as its subject and headers say on the wire.
type Kind uint8

const (
	KRequest   Kind = iota // client → calc.request (queue group dispatchers)
	KForward               // dispatcher → calc.worker.<id>
	KReply                 // worker → a dispatcher's reply subject
	KProgress              // worker → dispatcher, or dispatcher → client: header only
	KRelay                 // dispatcher → client: the one reply
	KCancel                // dispatcher → calc.worker.<id>: Calc-Cancel
	KHeartbeat             // worker → calc.heartbeat.<id>
	KAck                   // dispatcher → the worker's bounce subject, an inbox: the reply is relayed
	KOrphan                // worker → calc.orphan.<id>: a reply handed over
	KNoResp                // broker → reply subject: no responders
	KDiscover              // dispatcher → calc.discover
	KClaim                 // worker → calc.claim.<id>: is the id live?
	KClaimAns              // worker → the claimer: a heartbeat, the id is taken
)

var kindNames = [...]string{"request", "forward", "reply", "progress", "relay", "cancel",
	"heartbeat", "ack", "orphan", "noresp", "discover", "claim", "claim-answer"}

func (k Kind) String() string { return kindNames[k] }

// Msg is one message on the simulated bus: a subject, a reply subject,
// and the headers and payload Bilancia reads, as typed fields.
type Msg struct {
	Subject string
	Reply   string
	Kind    Kind
	ID      string   // Calc-Request-Id
	IDs     []string // a progress message's ids
	From    string   // Calc-Worker or Calc-Dispatcher
	// ClientReply: Calc-Client-Reply, the client's reply subject on a
	// forward of a keyed request, and on the reply handed over for it.
	ClientReply string
	Code        int    // an error reply's code; 0: a result
	Text        string // an error's message
	Result      int64  // the result of the job
	Work        Time   // the job: how long it computes (the payload of sleep)
	Arg         int64  // the job's argument; the result is a function of it
	Timeout     Time   // Calc-Timeout-Ms
	Hedge       Time   // Calc-Hedge-Ms
	Attempt     int    // Calc-Attempts
	WantPg      bool   // Calc-Progress: 1 on a request
	// Heartbeat fields.
	State    string // up, draining
	Seq      uint64
	Started  Time // started_at: tells a restart of one id
	Interval Time
	Pg       Time // progress_ms
}

func (m *Msg) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", m.Kind, m.Subject)
	if m.Reply != "" {
		fmt.Fprintf(&b, " reply=%s", m.Reply)
	}
	if m.ID != "" {
		fmt.Fprintf(&b, " id=%s", m.ID)
	}
	if len(m.IDs) > 0 {
		fmt.Fprintf(&b, " ids=%s", strings.Join(m.IDs, ","))
	}
	if m.From != "" {
		fmt.Fprintf(&b, " from=%s", m.From)
	}
	switch m.Kind {
	case KReply, KRelay, KOrphan:
		if m.Code != 0 {
			fmt.Fprintf(&b, " error=%d %q", m.Code, m.Text)
		} else {
			fmt.Fprintf(&b, " result=%d", m.Result)
		}
		if m.Kind == KRelay {
			fmt.Fprintf(&b, " attempts=%d", m.Attempt)
		}
	case KHeartbeat, KClaimAns:
		fmt.Fprintf(&b, " state=%s seq=%d started=%v", m.State, m.Seq, m.Started)
	case KRequest, KForward:
		fmt.Fprintf(&b, " work=%v timeout=%v", m.Work, m.Timeout)
	}
	return b.String()
}

// resultOf is the right result of a job's argument: a reply whose result
// differs answers another request.
func resultOf(arg int64) int64 { return arg*7 + 3 }
