package flight

import (
	"testing"
	"time"
)

// BenchmarkRequestReply is the hot path through the core: a request
// forwarded and its reply relayed. The request is the shell's to make;
// the core allocates nothing more for it.
func BenchmarkRequestReply(b *testing.B) {
	ws := []*Worker{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	p := &rrPool{ws: ws}
	c := New(Config{MaxAttempts: 3, AttemptTimeout: time.Second, Budget: Budget{Ratio: 0.2, Min: 10}}, p)
	out := make([]Action, 0, 8)
	reqs := make([]Request, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := &reqs[i]
		r.ID, r.Reply, r.Keyed, r.Timeout = "id", "inbox", true, time.Minute
		out = c.Step(Event{Kind: EvRequest, Now: int64(i), Req: r}, out[:0])
		out = c.Step(Event{Kind: EvReply, Now: int64(i) + 1, Token: out[0].Token}, out[:0])
	}
}

// rrPool is a round robin over its workers.
type rrPool struct {
	ws []*Worker
	n  int
}

func (p *rrPool) Pick(s *Skip) *Worker {
	for range p.ws {
		p.n++
		if w := p.ws[p.n%len(p.ws)]; !s.Skips(w) {
			return w
		}
	}
	return nil
}

func (p *rrPool) AnyLive(s *Skip) bool { return true }

func (p *rrPool) Inflight(*Worker, int) {}
