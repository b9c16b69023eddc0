package calcworker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// NewID returns a random worker id, "w-" and 16 hex digits: 64 bits, so
// that a fleet's default ids never collide in practice.
func NewID() string { return fmt.Sprintf("w-%016x", rand.Uint64()) }

// ErrIDTaken reports a worker id that a live worker already serves.
var ErrIDTaken = errors.New("calcworker: worker id is live")

// DefaultClaimWait bounds CheckIDs when its ctx has no deadline. A live
// worker answers at once and an id nobody holds gets the broker's "no
// responders" at once; the wait only matters when something subscribes to
// the claim subjects without answering (nats sub 'calc.>').
const DefaultClaimWait = 500 * time.Millisecond

// TakenError names the ids a probe found live, with what their holders
// said about themselves. errors.Is(err, ErrIDTaken) holds.
type TakenError struct {
	Holders []wire.Heartbeat // one per id taken, in the order asked
}

// maxNamed bounds the ids a TakenError names: a fleet's replicas could be
// thousands.
const maxNamed = 5

func (e *TakenError) Error() string {
	var parts []string
	for _, h := range e.Holders[:min(len(e.Holders), maxNamed)] {
		var about []string
		if h.Host != "" {
			about = append(about, "on "+printable(h.Host))
		}
		if !h.StartedAt.IsZero() {
			about = append(about, "up since "+h.StartedAt.UTC().Format(time.RFC3339))
		}
		part := fmt.Sprintf("%q", h.ID)
		if len(about) > 0 {
			part += " (" + strings.Join(about, ", ") + ")"
		}
		parts = append(parts, part)
	}
	if more := len(e.Holders) - maxNamed; more > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", more))
	}
	return "calcworker: a live worker already has id " + strings.Join(parts, ", ")
}

// printable is a holder's word about itself as it may reach a terminal:
// whoever answers a claim writes it.
func printable(s string) string {
	plain := len(s) <= 64
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] > ' ' && s[i] < 127
	}
	if plain {
		return s
	}
	return fmt.Sprintf("%.64q", s)
}

func (e *TakenError) Unwrap() error { return ErrIDTaken }

// CheckIDs asks, for all ids at once, whether a live worker already serves
// one: it sends a request to each id's claim subject, which only a running
// worker of that id subscribes to. It returns a *TakenError naming the ids
// that answered, or nil. An id answered by the broker's "no responders" is
// free; one unanswered when ctx's deadline passes (DefaultClaimWait if it
// has none) counts as free too. A cancelled ctx returns its error.
//
// Two workers of one id that start within a round trip of each other can
// both find it free: the probe is for the operator's mistake, not a lock.
func CheckIDs(ctx context.Context, nc *nats.Conn, prefix string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultClaimWait)
		defer cancel()
	}
	subj := wire.Subjects{Prefix: prefix}
	// The answers come to an inbox of ours, "<inbox>.<id>": a live
	// worker answers nowhere else.
	inbox := nc.NewInbox()
	p := &probe{pending: make(map[string]bool, len(ids)), taken: map[string]wire.Heartbeat{}, done: make(chan struct{})}
	var uniq []string // published while answers arrive: not ranging over pending
	for _, id := range ids {
		if !p.pending[id] {
			p.pending[id] = true
			uniq = append(uniq, id)
		}
	}
	// A callback, not NextMsg: that turns a "no responders" into an error
	// without its subject, which names the id.
	sub, err := nc.Subscribe(inbox+".*", func(m *nats.Msg) { p.answer(claimID(m.Subject, inbox), m) })
	if err != nil {
		return fmt.Errorf("calcworker: claim: %w", err)
	}
	defer sub.Unsubscribe()
	for _, id := range uniq {
		if err := nc.PublishRequest(subj.Claim(id), inbox+"."+id, nil); err != nil {
			return fmt.Errorf("calcworker: claim %s: %w", id, err)
		}
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("calcworker: claim: %w", ctx.Err())
		}
		// The rest unanswered: free.
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.taken) == 0 {
		return nil
	}
	e := &TakenError{}
	for _, id := range ids {
		if hb, ok := p.taken[id]; ok {
			e.Holders = append(e.Holders, hb)
			delete(p.taken, id)
		}
	}
	return e
}

// probe is what CheckIDs heard so far.
type probe struct {
	mu      sync.Mutex
	pending map[string]bool           // ids not answered yet
	taken   map[string]wire.Heartbeat // ids a live worker answered for
	done    chan struct{}             // closed when pending is empty
}

// answer takes the first answer about id: the broker's "no responders"
// (free) or a live worker's heartbeat (taken).
func (p *probe) answer(id string, m *nats.Msg) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pending[id] {
		return
	}
	delete(p.pending, id)
	if m.Header.Get("Status") != "503" {
		var hb wire.Heartbeat
		_ = json.Unmarshal(m.Data, &hb) // an answer is enough; what it says is for the message
		hb.ID = id
		p.taken[id] = hb
	}
	if len(p.pending) == 0 {
		close(p.done)
	}
}

// claimID is the id a claim reply's subject, "<inbox>.<id>", names; ""
// if it names none.
func claimID(subject, inbox string) string {
	id, _ := strings.CutPrefix(subject, inbox+".")
	return id
}

// claim checks that no live worker has the id, unless ClaimWait < 0, then
// answers the probes of the workers that start after it.
func (w *Worker) claim() error {
	if w.cfg.ClaimWait > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ClaimWait)
		err := CheckIDs(ctx, w.nc, w.cfg.Prefix, []string{w.cfg.ID})
		cancel()
		if err != nil {
			return err
		}
	}
	if err := w.answerClaims(); err != nil {
		return fmt.Errorf("calcworker: subscribe: %w", err)
	}
	return nil
}

// answerClaims subscribes to the worker's claim subject. Without Shared
// the subscription's own goroutine answers, so that a worker busy
// computing still does; with it the shared pool does, as for discovery: a
// simulated fleet parks no goroutine per worker.
func (w *Worker) answerClaims() error {
	var s *nats.Subscription
	var err error
	if w.cfg.Shared != nil {
		s, err = w.cfg.Shared.subscribe(w, w.subj.Claim(w.cfg.ID), "")
	} else {
		s, err = w.nc.Subscribe(w.subj.Claim(w.cfg.ID), w.answerClaim)
	}
	if err != nil {
		return err
	}
	w.subs = append(w.subs, s)
	return nil
}

// answerClaim answers a probe for the worker's id with its heartbeat.
func (w *Worker) answerClaim(m *nats.Msg) {
	if m.Reply == "" || !w.replyOK(m) {
		return
	}
	b, _ := json.Marshal(w.Heartbeat())
	if err := m.Respond(b); err != nil && w.cfg.OnError != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		w.cfg.OnError(fmt.Errorf("calcworker: claim answer: %w", err))
	}
}
