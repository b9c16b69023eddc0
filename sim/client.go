package sim

import "fmt"

// client is a client node: it sends requests on calc.request, each with
// a reply subject under its inbox, and lets the client's resend core
// decide when to send one again; the first reply of each is its answer.
type client struct {
	*node
	id    string
	inbox string
	core  *clientCore
	reqs  []*creq // open, in the order sent
	n     int
}

// creq is one request of a client, and its record for the invariants.
type creq struct {
	id      string
	reply   string
	arg     int64
	work    Time
	hedge   Time
	start   Time
	dl      Time
	wake    *task
	done    bool
	rec     *record
	handles any // the core's own state of the request
}

func (s *Sim) newClient(i int) *client {
	c := &client{id: fmt.Sprintf("c%d", i)}
	c.node = s.newNode(c.id)
	c.inbox = "_INBOX." + c.id + "."
	c.handle = c.receive
	c.onReconnect = c.reconnected
	c.core = newClientCore(s)
	s.clients = append(s.clients, c)
	return c
}

func (c *client) start() {
	c.restart()
	c.s.net.subscribe(c.node, c.inbox+">", "")
	c.after(c.s.pick(c.s.cfg.Gap), c.issue)
}

// issue starts the next request, and plans the one after.
func (c *client) issue() {
	s := c.s
	if s.clock.now >= s.cfg.LoadEnd || c.n >= s.cfg.Requests {
		return
	}
	c.n++
	r := &creq{id: fmt.Sprintf("%s-%d", c.id, c.n), reply: fmt.Sprintf("%s%d", c.inbox, c.n),
		arg: s.rng.Int64N(1 << 20), start: s.clock.now, dl: s.clock.now + s.cfg.Timeout}
	r.work = s.pick(s.cfg.ShortWork)
	if s.rng.Float64() < s.cfg.LongShare {
		r.work = s.pick(s.cfg.LongWork)
	}
	if s.rng.Float64() < s.cfg.HedgeAsk {
		r.hedge = s.pick(span{50 * Millisecond, 500 * Millisecond})
	}
	r.rec = s.check.opened(c, r)
	c.reqs = append(c.reqs, r)
	s.stats.requests++
	c.apply(r, c.core.start(r, s.clock.now, c.openCount()))
	c.after(s.pick(s.cfg.Gap), c.issue)
}

func (c *client) openCount() int { return len(c.reqs) }

func (c *client) find(reply string) *creq {
	for _, r := range c.reqs {
		if r.reply == reply {
			return r
		}
	}
	return nil
}

func (c *client) receive(m *Msg) {
	r := c.find(m.Subject)
	if r == nil {
		if m.Kind == KRelay {
			c.s.check.lateReply(c, m)
		}
		return
	}
	now := c.s.clock.now
	switch m.Kind {
	case KRelay:
		c.finish(r, m.Code, m.Text, m.Result, m)
	case KProgress:
		c.apply(r, c.core.progress(r, now))
	case KNoResp:
		c.apply(r, c.core.noResponders(r, now))
	}
}

// reconnected: every request still waiting is sent again at once.
func (c *client) reconnected() {
	for _, r := range c.reqs {
		c.apply(r, c.core.reconnected(r, c.s.clock.now))
	}
}

// apply carries out the core's decision for r.
func (c *client) apply(r *creq, d clientDecision) {
	if r.done {
		return
	}
	s := c.s
	if d.send {
		if d.resend {
			s.stats.resends++
			r.rec.sends++
		}
		s.tracef("%s sends %s (send %d)", c.id, r.id, r.rec.sends)
		c.publish(&Msg{Subject: "calc.request", Reply: r.reply, Kind: KRequest, ID: r.id, From: c.id,
			Work: r.work, Arg: r.arg, Timeout: r.dl - s.clock.now, Hedge: r.hedge, WantPg: true})
	}
	if d.fail != 0 {
		c.finish(r, d.fail, d.why, 0, nil)
		return
	}
	if d.wake > 0 {
		cancel(r.wake)
		r.wake = c.after(d.wake-s.clock.now, func() {
			r.wake = nil
			c.apply(r, c.core.timer(r, s.clock.now, c.openCount()))
		})
	}
}

// finish ends r with its answer: a reply (m), or the core's own error.
func (c *client) finish(r *creq, code int, text string, result int64, m *Msg) {
	r.done = true
	cancel(r.wake)
	c.core.end(r)
	for i, o := range c.reqs {
		if o == r {
			c.reqs = append(c.reqs[:i], c.reqs[i+1:]...)
			break
		}
	}
	c.s.check.closed(c, r, code, text, result, m)
}
