package flight

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// testPool picks, in order, the first of its workers not skipped; live
// false moves a worker to the suspects.
type testPool struct {
	live     []*Worker
	suspects []*Worker
}

func (p *testPool) Pick(s *Skip) *Worker {
	for _, set := range [][]*Worker{p.live, p.suspects} {
		for _, w := range set {
			if !s.Skips(w) {
				return w
			}
		}
		if len(set) > 0 && set[0] != nil && len(p.live) > 0 {
			return nil // live workers exist: suspects only when none is
		}
	}
	return nil
}

func (p *testPool) AnyLive(s *Skip) bool {
	for _, w := range p.live {
		if !s.Skips(w) {
			return true
		}
	}
	return false
}

func (p *testPool) Inflight(*Worker, int) {}

func (p *testPool) remove(w *Worker) {
	for i, o := range p.live {
		if o == w {
			p.live = append(p.live[:i:i], p.live[i+1:]...)
			return
		}
	}
}

const ms = int64(time.Millisecond)

// rig drives a core, recording its actions as text.
type rig struct {
	t    *testing.T
	c    *Core
	pool *testPool
	out  []Action
}

func newRig(t *testing.T, cfg Config, workers ...*Worker) *rig {
	p := &testPool{live: workers}
	return &rig{t: t, c: New(cfg, p), pool: p}
}

func (g *rig) step(ev Event) []Action {
	g.out = g.c.Step(ev, g.out[:0])
	return g.out
}

// acts is actions as a person reads them, ActWake left out.
func acts(as []Action) string {
	var b []string
	for _, a := range as {
		switch a.Kind {
		case ActForward:
			b = append(b, fmt.Sprintf("forward %s to %s", a.Req.ID, a.W.ID))
		case ActRelay:
			b = append(b, fmt.Sprintf("relay %s from %s after %d", a.Req.ID, a.Worker, a.Attempts))
		case ActError:
			b = append(b, fmt.Sprintf("error %s %d", a.Req.ID, a.Code))
		case ActProgress:
			b = append(b, "progress "+a.Req.ID)
		case ActCancel:
			b = append(b, fmt.Sprintf("cancel %s on %s", a.Req.ID, a.W.ID))
		case ActAck:
			b = append(b, "ack "+a.Subject)
		case ActWorkerGone:
			b = append(b, "gone "+a.Worker)
		case ActFailure:
			b = append(b, "failure "+a.W.ID)
		case ActSuccess:
			b = append(b, "success "+a.W.ID)
		case ActSilent:
			b = append(b, "silent "+a.W.ID)
		case ActHold:
			b = append(b, "hold "+time.Duration(a.At).String())
		case ActResume:
			b = append(b, fmt.Sprintf("resume %d", a.Attempts))
		}
	}
	return strings.Join(b, "; ")
}

func (g *rig) want(as []Action, want string) {
	g.t.Helper()
	if got := acts(as); got != want {
		g.t.Fatalf("actions\n got: %s\nwant: %s", got, want)
	}
}

func req(id string, timeout time.Duration) *Request {
	return &Request{ID: id, Reply: "inbox." + id, Keyed: true, Timeout: timeout}
}
