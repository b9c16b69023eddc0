package sim

import (
	"github.com/bilancia/bilancia/client/resend"
	"github.com/bilancia/bilancia/internal/natsutil"
)

// clientDecision is what the client's resend core decided for a request:
// send it (again), wake it at a time, or end it with an error.
type clientDecision struct {
	send, resend bool
	wake         Time
	fail         int
	why          string
}

// clientCore runs the real client's resend core (client/resend) for each
// request, with the shell's part as client.Client does it: the budget
// over the client's requests, the gap between progress messages learnt
// across them.
type clientCore struct {
	s        *Sim
	policy   resend.Policy
	budget   natsutil.RetryBudget
	retrying int64
	pgap     int64
}

// callOf is a request's resend state.
type callOf struct {
	call  *resend.Call
	heard int64
}

// The client's defaults (client.Config).
const (
	clientSilence     = 250 * Millisecond
	clientMaxAttempts = 4
)

func newClientCore(s *Sim) *clientCore {
	return &clientCore{s: s,
		policy: resend.Policy{Silence: clientSilence, AttemptWait: 2 * Second, MaxAttempts: clientMaxAttempts,
			Rand: s.rng.Int64N},
		budget: natsutil.RetryBudget{Ratio: 0.2, Min: 10}}
}

func callState(r *creq) *callOf { return r.handles.(*callOf) }

func (c *clientCore) decide(a resend.Action) clientDecision {
	d := clientDecision{send: a.Send, resend: a.Retry, wake: Time(a.Wake)}
	if a.Denied {
		c.s.stats.resendsDenied++
	}
	if a.Counted {
		c.retrying++
	}
	switch a.Done {
	case resend.OutcomeDeadline:
		d.fail, d.why, d.wake = 504, "no reply in time", 0
	case resend.OutcomeNoDispatcher:
		d.fail, d.why, d.wake = 503, "no dispatcher is listening", 0
	}
	return d
}

func (c *clientCore) start(r *creq, now Time, _ int) clientDecision {
	call, a := resend.Start(c.policy, int64(now), int64(r.dl))
	r.handles = &callOf{call: call}
	return c.decide(a)
}

// progress: a sign of life, fed to the core when its timer fires, as the
// real client does.
func (c *clientCore) progress(r *creq, now Time) clientDecision {
	p := callState(r)
	if p.heard != 0 {
		c.pgap = resend.NextGap(c.pgap, int64(now)-p.heard)
	}
	p.heard = int64(now)
	return clientDecision{}
}

func (c *clientCore) noResponders(r *creq, now Time) clientDecision {
	return c.decide(callState(r).call.NoResponders(int64(now)))
}

func (c *clientCore) reconnected(r *creq, now Time) clientDecision {
	return c.decide(callState(r).call.Reconnected(int64(now)))
}

func (c *clientCore) timer(r *creq, now Time, inflight int) clientDecision {
	p := callState(r)
	p.call.Progress(p.heard)
	allows := p.call.Retrying() || c.budget.Allows(int64(inflight), c.retrying)
	return c.decide(p.call.Timer(int64(now), resend.Silence(clientSilence, c.pgap), allows))
}

func (c *clientCore) end(r *creq) {
	if callState(r).call.Retrying() {
		c.retrying--
	}
}
