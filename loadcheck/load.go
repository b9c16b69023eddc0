package loadcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// The checked load itself, shared by Run and by the chaos matrix in e2e:
// requests with known answers, sent at a steady rate through clients whose
// every reply is checked, and every reply that reaches a client's inbox
// counted.

// Record is one request of a checked load and what became of it.
type Record struct {
	Cmd   string
	Want  json.RawMessage // nil: a sleep, whose result is the worker id
	Sent  time.Time       // zero: never sent
	Done  time.Time
	Res   *client.Result
	Err   error
	Wrong string // why the reply is wrong, when it is
}

// OK says the request was answered, correctly.
func (rc *Record) OK() bool { return rc.Err == nil && rc.Wrong == "" }

// Code is the error code the request failed with, or 0.
func (rc *Record) Code() int {
	var we *wire.Error
	if errors.As(rc.Err, &we) {
		return we.Code
	}
	return 0
}

// Resent says the client had to send the request more than once.
func (rc *Record) Resent() bool { return rc.Res != nil && rc.Res.Sends > 1 }

// Extra is how long the request waited beyond its own work.
func (rc *Record) Extra() time.Duration { return rc.Done.Sub(rc.Sent) - rc.Work() }

// Describe tells what became of the request, for the log: its times from
// inj (a fault's injection; zero: none), its sends and who answered it.
func (rc *Record) Describe(inj time.Time) string {
	at := rc.Sent.Format("15:04:05.000")
	if !inj.IsZero() {
		at = fmt.Sprintf("%+dms from the injection", rc.Sent.Sub(inj).Milliseconds())
	}
	s := fmt.Sprintf("%q sent %s, done after %dms (%dms beyond its work)", rc.Cmd, at,
		rc.Done.Sub(rc.Sent).Milliseconds(), rc.Extra().Milliseconds())
	if r := rc.Res; r != nil {
		s += fmt.Sprintf(", %d sends, answered by %s through %s after %d attempts there", r.Sends, r.Worker, r.Dispatcher, r.Attempts)
	}
	return s
}

// Work is how long the request's own work takes: a sleep's length, 0 for
// the other operations, which take well under a millisecond.
func (rc *Record) Work() time.Duration {
	if ms, ok := strings.CutPrefix(rc.Cmd, "sleep "); ok {
		if n, err := strconv.Atoi(ms); err == nil {
			return time.Duration(n) * time.Millisecond
		}
	}
	return 0
}

// Hurt says a fault touched the request: it failed, or needed a resend by
// the client or a second worker.
func (rc *Record) Hurt() bool {
	return !rc.OK() || rc.Res == nil || rc.Res.Sends > 1 || rc.Res.Attempts > 1
}

func (rc *Record) check() {
	res := rc.Res
	switch {
	case res.Reply.ID != res.ID:
		rc.Wrong = fmt.Sprintf("%s: reply for id %q, want %q", rc.Cmd, res.Reply.ID, res.ID)
	case rc.Want == nil && res.ResultString() != res.Worker:
		rc.Wrong = fmt.Sprintf("%s returned %s from worker %s", rc.Cmd, res.Reply.Result, res.Worker)
	case rc.Want != nil && string(res.Reply.Result) != string(rc.Want):
		rc.Wrong = fmt.Sprintf("%s = %s; want %s", rc.Cmd, res.Reply.Result, rc.Want)
	}
}

// Draw returns n requests drawn from rng with their expected results:
// random operations, and every sleepEvery-th (if sleepEvery > 0) a sleep
// of the given length.
func Draw(rng *rand.Rand, n, sleepEvery int, sleep time.Duration) []*Record {
	recs := make([]*Record, n)
	for i := range recs {
		rc := &Record{}
		if sleepEvery > 0 && i%sleepEvery == sleepEvery-1 {
			rc.Cmd = "sleep " + strconv.FormatInt(sleep.Milliseconds(), 10)
		} else {
			rc.Cmd = calc.Random(rng)
			// calc.Random draws only requests that succeed; one that does
			// not shows up as wrong, with this error in its example.
			rep, err := calc.Compute(context.Background(), []byte(rc.Cmd), calc.Env{})
			if err == nil {
				rc.Want = rep.Result
			} else {
				rc.Want = json.RawMessage(strconv.Quote("error: " + err.Error()))
			}
		}
		recs[i] = rc
	}
	return recs
}

// Pace is how Send sends.
type Pace struct {
	Rate    float64       // requests per second
	MaxOpen int           // requests outstanding at most
	Timeout time.Duration // each request's deadline; 0: the client's own
}

// Send sends recs in order at p.Rate, through clients in turn, calling
// before(i), if not nil, just before recs[i] goes out. It returns once every
// request sent is answered or past its deadline, with the number sent.
// Cancelling ctx stops the sending and the requests in flight. It is
// bounded: the sending gives up at three times its nominal length plus 30s.
func Send(ctx context.Context, clients []*client.Client, recs []*Record, p Pace, before func(i int)) (int, error) {
	if p.Rate <= 0 || p.MaxOpen <= 0 || len(clients) == 0 {
		return 0, fmt.Errorf("%w: rate %v, max open %d, %d clients", ErrConfig, p.Rate, p.MaxOpen, len(clients))
	}
	nominal := time.Duration(float64(len(recs)) / p.Rate * float64(time.Second))
	end := time.NewTimer(3*nominal + 30*time.Second)
	defer end.Stop()
	tick := time.NewTicker(time.Duration(float64(time.Second) / p.Rate))
	defer tick.Stop()
	open := make(chan struct{}, p.MaxOpen)
	var wg sync.WaitGroup
	defer wg.Wait()
	late := func(i int) error { return fmt.Errorf("loadcheck: sent only %d of %d requests in time", i, len(recs)) }
	for i, rc := range recs {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return i, ctx.Err()
		case <-end.C:
			return i, late(i)
		}
		select {
		case open <- struct{}{}:
		case <-ctx.Done():
			return i, ctx.Err()
		case <-end.C:
			return i, late(i)
		}
		if before != nil {
			before(i)
		}
		c := clients[i%len(clients)]
		rc.Sent = time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-open }()
			rctx := ctx
			if p.Timeout > 0 {
				var cancel context.CancelFunc
				rctx, cancel = context.WithTimeout(ctx, p.Timeout)
				defer cancel()
			}
			rc.Res, rc.Err = c.Do(rctx, rc.Cmd)
			rc.Done = time.Now()
			if rc.Err == nil {
				rc.check()
			}
		}()
	}
	return len(recs), nil
}

// Wire counts the replies that reach the clients' inboxes, per request id:
// more of them than a request's sends is a duplicate that the client hides.
type Wire struct {
	mu sync.Mutex
	n  map[string]int
}

// Watch counts the replies to nc's clients: a client's inbox prefix is its
// connection's response inbox prefix, so a second subscription sees every
// reply the client gets.
func (w *Wire) Watch(nc *nats.Conn) error {
	inbox := nc.NewRespInbox()
	inbox = inbox[:strings.LastIndexByte(inbox, '.')+1]
	sub, err := nc.Subscribe(inbox+"*", func(m *nats.Msg) {
		if natsutil.IsNoResponders(m) || (m.Header[wire.HdrProgress] != nil && len(m.Data) == 0) {
			return // not a reply: no responders, or a progress message
		}
		id := m.Header.Get(wire.HdrRequestID)
		w.mu.Lock()
		if w.n == nil {
			w.n = map[string]int{}
		}
		w.n[id]++
		w.mu.Unlock()
	})
	if err != nil {
		return err
	}
	return sub.SetPendingLimits(-1, -1)
}

// Counts returns a copy of the replies counted per request id.
func (w *Wire) Counts() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.n)
}

// Clients are the clients of a checked load, each on a connection of its
// own whose replies are counted on the wire.
type Clients struct {
	List  []*client.Client
	Wire  Wire
	conns []*nats.Conn
}

// Dial opens n clients named prefix-c0, prefix-c1, ..., client i on the
// connection that dial(name, i) opens, and counts the replies on every
// connection's inbox. cfg configures each client; Dial sets its Conn and
// Name. Its errors are dial's, or else wrap ErrConnect; it then closes
// what it opened.
func Dial(n int, prefix string, dial func(name string, i int) (*nats.Conn, error), cfg client.Config) (*Clients, error) {
	cs := &Clients{}
	for i := range n {
		name := fmt.Sprintf("%s-c%d", prefix, i)
		nc, err := dial(name, i)
		if err != nil {
			cs.Close()
			return nil, err
		}
		cs.conns = append(cs.conns, nc)
		if err := cs.Wire.Watch(nc); err != nil {
			cs.Close()
			return nil, fmt.Errorf("%w: %w", ErrConnect, err)
		}
		cfg.Conn, cfg.Name = nc, name
		c, err := client.Connect(cfg)
		if err != nil {
			cs.Close()
			return nil, fmt.Errorf("%w: %w", ErrConnect, err)
		}
		cs.List = append(cs.List, c)
	}
	return cs, nil
}

// Close closes the clients, then their connections.
func (cs *Clients) Close() {
	for _, c := range cs.List {
		c.Close()
	}
	for _, nc := range cs.conns {
		nc.Close()
	}
}
