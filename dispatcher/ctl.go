package dispatcher

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Runtime control over NATS, as HAProxy's runtime API: an operator's
// drain, resume or list on "<prefix>.ctl.<verb>" reaches every
// dispatcher, and each answers with a wire.CtlReply (bilancia ctl gathers
// them). With broker --auth only dispatchers and admins may publish
// there.

// maxCtlRequest bounds a control request's payload worth reading.
const maxCtlRequest = 4096

// Waits of syncDrains: for the first peer's answer, and then for more.
const (
	syncFirstWait = 500 * time.Millisecond
	syncQuiet     = 100 * time.Millisecond
)

// Drain takes worker id out of this dispatcher's rotation: it gets no new
// forwards, keeps the requests it holds, and its heartbeats do not bring
// it back; Resume does. id need not be known yet: the drain applies when
// the worker appears. Draining a drained worker changes nothing. An
// invalid id, or a new drain beyond Config.MaxWorkers drained ids, is
// refused with an error and changes nothing.
func (d *Dispatcher) Drain(id string) error {
	_, err := d.drain(id, true)
	return err
}

// Resume puts worker id back in rotation after Drain; its state is again
// what its heartbeats say. Resuming a worker not drained changes nothing.
func (d *Dispatcher) Resume(id string) error {
	_, err := d.drain(id, false)
	return err
}

// Drained lists the workers drained on this dispatcher, sorted by id.
func (d *Dispatcher) Drained() []string { return d.mem.Drained() }

// drain drains or resumes id, and logs and publishes what changed.
func (d *Dispatcher) drain(id string, on bool) (drainResult, error) {
	res, err := d.mem.setDrained(id, on)
	if err != nil || !res.changed {
		return res, err
	}
	msg := "worker resumed"
	if on {
		msg = "worker drained"
	}
	d.log.Info(msg, "worker", id, "state", res.state, "known", res.known)
	d.drainEvent(id, res, on)
	return res, nil
}

// onCtl answers a control request: a drain or resume of the worker its
// wire.CtlRequest names, or a list. A bad request gets a 400 and changes
// nothing.
func (d *Dispatcher) onCtl(m *nats.Msg) {
	if m.Reply == "" {
		return // an operator always asks; a bare publish is nobody's
	}
	if !d.replyOK(respCtl, m.Reply) {
		return // and a drain asked by a deputy is nobody's either
	}
	start := time.Now()
	verb := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	reply := wire.CtlReply{Dispatcher: d.cfg.ID}
	var err error
	switch verb {
	case wire.CtlList:
	case wire.CtlDrain, wire.CtlResume:
		var req wire.CtlRequest
		if len(m.Data) > maxCtlRequest {
			err = errors.New("request too large")
		} else if err = json.Unmarshal(m.Data, &req); err == nil {
			var res drainResult
			res, err = d.drain(req.Worker, verb == wire.CtlDrain)
			reply.Worker, reply.Known, reply.Changed, reply.State = req.Worker, res.known, res.changed, res.state
		}
	default:
		err = errors.New("unknown control verb " + clip(verb, maxLoggedField))
	}
	if err != nil {
		out := wire.ErrorMsg("", wire.NewError(wire.CodeBadRequest, "dispatcher "+d.cfg.ID+": "+err.Error()))
		out.Subject = m.Reply
		_ = d.nc.PublishMsg(out)
		d.served.ctl.add(start, true)
		return
	}
	reply.Drained = d.mem.Drained()
	b, _ := json.Marshal(reply)
	_ = m.Respond(b)
	d.served.ctl.add(start, false)
}

// syncDrains asks the dispatchers already running which workers they
// hold drained, and drains them here too, so that a dispatcher that
// starts later keeps the operator's drains. It waits at most
// syncFirstWait for the first answer, then syncQuiet for more; with no
// other dispatcher the broker says "no responders" at once. Start calls
// it before it subscribes to the control subject itself.
func (d *Dispatcher) syncDrains() error {
	inbox := d.nc.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := d.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := d.nc.PublishRequest(d.subj.Ctl(wire.CtlList), inbox, nil); err != nil {
		return err
	}
	wait := time.NewTimer(syncFirstWait)
	defer wait.Stop()
	learnt := 0
	for {
		select {
		case m := <-ch:
			if natsutil.IsNoResponders(m) {
				return nil
			}
			var r wire.CtlReply
			if json.Unmarshal(m.Data, &r) == nil {
				for _, id := range r.Drained {
					if res, err := d.mem.setDrained(id, true); err == nil && res.changed {
						learnt++
					}
				}
			}
			wait.Reset(syncQuiet)
		case <-wait.C:
			if learnt > 0 {
				d.log.Info("drains learnt from the other dispatchers", "workers", learnt)
			}
			return nil
		}
	}
}
