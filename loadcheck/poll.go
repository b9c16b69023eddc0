package loadcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/wire"
)

// poll is one status request and the dispatchers' answers to it.
type poll struct {
	sent    time.Time
	answers []answer
}

// answer is one dispatcher's view, with its arrival time.
type answer struct {
	at time.Time
	st wire.Status
}

// poller asks every dispatcher for its view every period and keeps each
// answer with its arrival time.
type poller struct {
	nc     *nats.Conn
	subj   wire.Subjects
	every  time.Duration
	window time.Duration // answers to a poll are awaited this long
	inbox  string        // "<inbox>." prefix of the reply subjects
	sub    *nats.Subscription

	mu    sync.Mutex
	polls []poll

	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func startPoller(nc *nats.Conn, subj wire.Subjects, every time.Duration) (*poller, error) {
	p := &poller{
		nc: nc, subj: subj, every: every, window: max(5*every, 500*time.Millisecond),
		inbox: nc.NewInbox() + ".", quit: make(chan struct{}),
	}
	sub, err := nc.Subscribe(p.inbox+"*", p.onAnswer)
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(-1, -1)
	p.sub = sub
	p.wg.Add(1)
	go p.loop()
	return p, nil
}

func (p *poller) loop() {
	defer p.wg.Done()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		p.mu.Lock()
		i := len(p.polls)
		p.polls = append(p.polls, poll{sent: time.Now()})
		p.mu.Unlock()
		// A failed publish (reconnecting) leaves the poll unanswered,
		// which is what it is.
		_ = p.nc.PublishRequest(p.subj.Status(), p.inbox+strconv.Itoa(i), nil)
		select {
		case <-t.C:
		case <-p.quit:
			return
		}
	}
}

func (p *poller) onAnswer(m *nats.Msg) {
	at := time.Now()
	i, err := strconv.Atoi(strings.TrimPrefix(m.Subject, p.inbox))
	if err != nil {
		return
	}
	var st wire.Status
	if json.Unmarshal(m.Data, &st) != nil || st.Dispatcher == "" {
		return // e.g. "no responders"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// An answer later than the window (held up in a partition, say) does
	// not count: the poll saw that dispatcher as silent.
	if i >= 0 && i < len(p.polls) && at.Sub(p.polls[i].sent) <= p.window {
		p.polls[i].answers = append(p.polls[i].answers, answer{at: at, st: st})
	}
}

// snapshot returns the polls; with complete, only those whose answers are
// all in: those sent at least a window ago.
func (p *poller) snapshot(complete bool) []poll {
	cut := time.Now().Add(-p.window)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []poll
	for _, pl := range p.polls {
		if complete && pl.sent.After(cut) {
			break
		}
		out = append(out, poll{sent: pl.sent, answers: append([]answer(nil), pl.answers...)})
	}
	return out
}

// stop ends the polls and returns once the answers to the last one are all
// in. Safe to call more than once.
func (p *poller) stop() {
	p.stopOnce.Do(func() {
		close(p.quit)
		p.wg.Wait()
		p.mu.Lock()
		last := p.polls[len(p.polls)-1].sent
		p.mu.Unlock()
		// The grace of the last poll, not a synchronisation: answers
		// later than this do not count anyway.
		time.Sleep(time.Until(last.Add(p.window)))
		_ = p.sub.Unsubscribe()
	})
}

// waitWhole waits until a poll sent at or after since shows v whole, and
// returns when it did; after timeout it returns why the last poll was not.
func (p *poller) waitWhole(ctx context.Context, v View, since time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		polls := p.snapshot(false)
		if at, ok := firstWhole(polls, v, since); ok {
			return at, nil
		}
		if time.Now().After(deadline) {
			// Why: the last poll whose answers are all in, or else the
			// oldest, which had the most time to collect them.
			why := "no status poll sent"
			if done := p.snapshot(true); len(done) > 0 {
				_, why = whole(done[len(done)-1], v)
			} else if len(polls) > 0 {
				_, why = whole(polls[0], v)
			}
			return time.Time{}, errors.New(why)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// stateOf is the state in which st lists worker id; "absent" if it does not.
func stateOf(st wire.Status, id string) string {
	for _, w := range st.Workers {
		if w.ID == id {
			return w.State
		}
	}
	return "absent"
}

// whole says whether every dispatcher of v answered pl listing every worker
// of v up, and when the last of those answers arrived; if not, why.
func whole(pl poll, v View) (time.Time, string) {
	var last time.Time
	for _, d := range v.Dispatchers {
		var a *answer
		for i := range pl.answers {
			if pl.answers[i].st.Dispatcher == d {
				a = &pl.answers[i]
				break
			}
		}
		if a == nil {
			return time.Time{}, fmt.Sprintf("dispatcher %s did not answer", d)
		}
		for _, w := range v.Workers {
			if s := stateOf(a.st, w); s != wire.StateUp {
				return time.Time{}, fmt.Sprintf("dispatcher %s lists worker %s %s", d, w, s)
			}
		}
		if a.at.After(last) {
			last = a.at
		}
	}
	return last, ""
}

// firstWhole is when the first poll sent at or after since showed v whole.
func firstWhole(polls []poll, v View, since time.Time) (time.Time, bool) {
	for _, pl := range polls {
		if pl.sent.Before(since) {
			continue
		}
		if at, why := whole(pl, v); why == "" {
			return at, true
		}
	}
	return time.Time{}, false
}

// firstNotWhole is the first evidence, in polls sent at or after since,
// that v was not whole: the arrival of an answer listing a worker not up,
// or the sending of a poll an expected dispatcher did not answer.
func firstNotWhole(polls []poll, v View, since time.Time) (time.Time, bool) {
	for _, pl := range polls {
		if pl.sent.Before(since) {
			continue
		}
		if _, why := whole(pl, v); why == "" {
			continue
		}
		best := time.Time{}
		for _, d := range v.Dispatchers {
			found := false
			for _, a := range pl.answers {
				if a.st.Dispatcher != d {
					continue
				}
				found = true
				for _, w := range v.Workers {
					if stateOf(a.st, w) != wire.StateUp && (best.IsZero() || a.at.Before(best)) {
						best = a.at
					}
				}
			}
			if !found && (best.IsZero() || pl.sent.Before(best)) {
				best = pl.sent
			}
		}
		return best, true
	}
	return time.Time{}, false
}

// firstWorkerLeft is the arrival of the first answer, to a poll sent at or
// after since, listing worker id not up.
func firstWorkerLeft(polls []poll, id string, since time.Time) (time.Time, bool) {
	var best time.Time
	for _, pl := range polls {
		if pl.sent.Before(since) {
			continue
		}
		for _, a := range pl.answers {
			if stateOf(a.st, id) != wire.StateUp && (best.IsZero() || a.at.Before(best)) {
				best = a.at
			}
		}
	}
	return best, !best.IsZero()
}
