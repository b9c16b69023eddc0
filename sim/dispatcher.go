package sim

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/bilancia/bilancia/dispatcher/flight"
)

// dispatcher is a dispatcher node: the real flight core, fed events made
// from the messages it receives and the membership's decisions, its
// actions turned into messages, as the dispatcher package's shell does.
type dispatcher struct {
	*node
	id      string
	inbox   string // "_INBOX.<id>."
	core    *flight.Core
	mem     members
	wake    *task
	wakeT   Time
	started Time // this life's start
	sweep   *task
}

func (s *Sim) newDispatcher(i int) *dispatcher {
	d := &dispatcher{id: fmt.Sprintf("d%d", i)}
	d.node = s.newNode(d.id)
	d.handle = d.receive
	s.dispatchers = append(s.dispatchers, d)
	return d
}

// coreConfig is the dispatcher's defaults, as dispatcher.DefaultConfig sets them.
func (s *Sim) coreConfig() flight.Config {
	return flight.Config{
		MaxInflight:    10000,
		MaxAttempts:    3,
		AttemptTimeout: Second,
		ProgressEvery:  100 * Millisecond,
		MuteFor:        s.cfg.DeadAfter,
		HoldFor:        2 * s.cfg.DeadAfter,
		Budget:         flight.Budget{Ratio: 0.2, Min: 10},
		Bugs:           s.bugs,
	}
}

// start runs a new life: an empty table and core, subscriptions, discover.
func (d *dispatcher) start() {
	if d.core != nil {
		d.s.addCounts(d)
	}
	d.restart()
	d.inbox = fmt.Sprintf("_INBOX.%s-%d.", d.id, d.life)
	d.mem = members{}
	d.core = flight.New(d.s.coreConfig(), &d.mem)
	d.wake, d.wakeT = nil, 0
	d.started = d.s.clock.now
	n := d.s.net
	// As the shell starts: heartbeats, replies and orphans first; the
	// drains of the other dispatchers (a round trip, and 100 ms more for
	// late answers when any answered); discover; then requests.
	n.subscribe(d.node, "calc.heartbeat.>", "")
	n.subscribe(d.node, "calc.orphan.>", "") // calc.orphan.* in the shell: worker ids hold no dot
	n.subscribe(d.node, d.inbox+">", "")
	sync := 2 * d.s.hop()
	for _, o := range d.s.dispatchers {
		if o != d && !o.dead {
			sync += 100 * Millisecond
			break
		}
	}
	d.after(sync, func() {
		d.publish(&Msg{Subject: "calc.discover", Kind: KDiscover, From: d.id})
		n.subscribe(d.node, "calc.request", "dispatchers")
	})
	d.sweepLoop()
}

// sweepLoop expires silent workers, as the shell's sweep does.
func (d *dispatcher) sweepLoop() {
	down := d.mem.expire(d.s.clock.now, d.s.cfg.DeadAfter)
	for _, silent := range []bool{true, false} { // the silent first: a hold they start covers the rest
		for _, m := range down {
			if m.silent != silent {
				continue
			}
			cause := flight.DownSilent
			if !silent {
				cause = flight.DownLeft
			}
			d.s.tracef("%s: %s down (no heartbeat)", d.id, m.id)
			d.step(flight.Event{Kind: flight.EvWorkerDown, W: m.fw, Cause: cause, NoneLive: !d.mem.anyUp()})
		}
	}
	d.sweep = d.after(100*Millisecond, d.sweepLoop)
}

func (d *dispatcher) now() int64 { return int64(d.s.clock.now) }

// step hands ev to the core and carries out its actions.
func (d *dispatcher) step(ev flight.Event) {
	ev.Now = d.now()
	for _, a := range d.core.Step(ev, nil) {
		d.act(a)
	}
}

func (d *dispatcher) receive(m *Msg) {
	switch {
	case m.Kind == KRequest:
		d.s.stats.dispatched++
		r := &flight.Request{ID: m.ID, Reply: m.Reply, Client: m.From, Keyed: true,
			Progress: m.WantPg, Hedge: m.Hedge, Timeout: m.Timeout, Ref: m}
		d.step(flight.Event{Kind: flight.EvRequest, Req: r})
	case m.Kind == KHeartbeat:
		mb, ev, cause := d.mem.heartbeat(m, d.s.clock.now, d.s.cfg.DeadAfter)
		if ev == flight.EvNone {
			return
		}
		d.s.tracef("%s: %s %s", d.id, mb.id, mb.state)
		d.step(flight.Event{Kind: ev, W: mb.fw, Every: mb.pg, Cause: cause, NoneLive: !d.mem.anyUp()})
	case m.Kind == KOrphan:
		// As the shell: from the worker its subject names, for the client
		// its forward named, or refused (Size 0).
		ev := flight.Event{Kind: flight.EvOrphan, ID: m.ID, Worker: m.From, Client: m.ClientReply, Payload: m, Code: m.Code}
		if m.ClientReply != "" && m.Subject == "calc.orphan."+m.From {
			ev.Size = 64
		}
		d.step(ev)
	case strings.HasPrefix(m.Subject, d.inbox):
		d.fromWorker(m, m.Subject[len(d.inbox):])
	}
}

// fromWorker takes what comes on a forward's reply subject: the worker's
// id (shared) or "t.<token>".
func (d *dispatcher) fromWorker(m *Msg, rest string) {
	var tok uint64
	wid := rest
	if strings.HasPrefix(rest, "t.") {
		tok, _ = strconv.ParseUint(rest[2:], 36, 64)
		wid = ""
	}
	if m.Kind == KReply || m.Kind == KProgress {
		d.s.check.heard(d, m)
	}
	switch m.Kind {
	case KReply:
		d.step(flight.Event{Kind: flight.EvReply, Token: tok, Worker: wid, ID: m.ID, Code: m.Code, Payload: m, AckTo: m.Reply})
	case KProgress:
		d.step(flight.Event{Kind: flight.EvProgress, Token: tok, Worker: wid, IDs: m.IDs})
	case KNoResp:
		d.step(flight.Event{Kind: flight.EvNoResponders, Token: tok, Worker: wid})
	}
}

func (d *dispatcher) act(a flight.Action) {
	s := d.s
	switch a.Kind {
	case flight.ActForward:
		req := a.Req.Ref.(*Msg)
		reply := d.inbox + a.W.ID
		if !a.Shared {
			reply = d.inbox + "t." + strconv.FormatUint(a.Token, 36)
		}
		s.check.forwarded(d, a.Req, a.W.ID)
		s.stats.forwards++
		if len(a.Req.Tried()) > 1 {
			s.stats.reforwards++
		}
		fwd := &Msg{Subject: "calc.worker." + a.W.ID, Reply: reply, Kind: KForward, ID: req.ID, From: d.id,
			Work: req.Work, Arg: req.Arg, Timeout: Time(a.LeftMS) * Millisecond, WantPg: true}
		if a.Req.Keyed {
			fwd.ClientReply = a.Req.Reply // as the shell: the client's reply subject, for a hand-over
		}
		d.publish(fwd)
	case flight.ActRelay:
		rp := a.Payload.(*Msg)
		s.check.answered(d, a.Req, rp.Code, rp.Text, rp.Result, rp.From)
		d.publish(&Msg{Subject: a.Req.Reply, Kind: KRelay, ID: a.Req.ID, From: rp.From, Code: rp.Code,
			Text: rp.Text, Result: rp.Result, Attempt: a.Attempts})
	case flight.ActError:
		s.check.answered(d, a.Req, a.Code, a.Msg, 0, d.id)
		d.publish(&Msg{Subject: a.Req.Reply, Kind: KRelay, ID: a.Req.ID, From: d.id, Code: a.Code,
			Text: a.Msg, Attempt: a.Attempts})
	case flight.ActProgress:
		d.publish(&Msg{Subject: a.Req.Reply, Kind: KProgress, IDs: []string{a.Req.ID}, From: d.id})
	case flight.ActCancel:
		d.publish(&Msg{Subject: "calc.worker." + a.W.ID, Kind: KCancel, ID: a.Req.ID, From: d.id})
	case flight.ActAck:
		d.publish(&Msg{Subject: a.Subject, Kind: KAck, From: d.id})
	case flight.ActWake:
		d.wakeAt(Time(a.At))
	case flight.ActWorkerGone:
		m := d.mem.get(a.Worker)
		if m == nil {
			return
		}
		if m.state == "down" {
			// Already down (tried as a suspect): nothing sent its
			// requests on yet, as the shell does.
			d.step(flight.Event{Kind: flight.EvWorkerDown, W: m.fw, Cause: flight.DownLeft, NoneLive: !d.mem.anyUp()})
			return
		}
		cause := flight.DownNoResponders // a draining one's too, as the shell has it
		m.state, m.silent = "down", false
		m.noResp, m.downAt = cause == flight.DownNoResponders, d.s.clock.now
		d.s.tracef("%s: %s down (no responders)", d.id, m.id)
		d.step(flight.Event{Kind: flight.EvWorkerDown, W: m.fw, Cause: cause, NoneLive: !d.mem.anyUp()})
	case flight.ActSilent:
		s.stats.silent++
	case flight.ActHold:
		s.stats.holds++
		d.s.tracef("%s: hold for %v: %s", d.id, Time(a.At), a.Msg)
	case flight.ActResume:
		s.stats.resumes++
	}
}

// wakeAt arms the core's timer for at, unless it is armed sooner.
func (d *dispatcher) wakeAt(at Time) {
	if d.wake != nil && !d.wake.dead && d.wakeT <= at && d.wakeT >= d.s.clock.now {
		return
	}
	cancel(d.wake)
	d.wakeT = at
	d.wake = d.after(at-d.s.clock.now, func() {
		d.wake = nil
		d.step(flight.Event{Kind: flight.EvTick})
	})
}
