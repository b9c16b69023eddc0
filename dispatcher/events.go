package dispatcher

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/dispatcher/flight"
	"github.com/bilancia/bilancia/wire"
)

// Membership events: what the workers' heartbeats and disappearances do
// to the requests in flight, and the log lines they make.

// changes logs membership changes and tells the core, which sends on the
// requests waiting on a worker that went down, instead of waiting for
// their timeouts, and the held requests to a worker that came up. cause
// is why workers that went down did, for the hold (flight.DownCause).
func (d *Dispatcher) changes(cs []change, cause flight.DownCause) {
	if len(cs) == 0 {
		return
	}
	noneLive := len(d.mem.Live()) == 0
	now := time.Now().UnixNano()
	var up []*member
	for _, c := range cs {
		attrs := []any{"worker", c.ID, "from", c.From, "to", c.To, "reason", c.Reason}
		if !c.Until.IsZero() {
			attrs = append(attrs, "until", c.Until)
		}
		d.log.Info("worker "+c.To, attrs...)
		d.workerEvent(c)
		d.metrics.changed(c)
		w := d.mem.Get(c.ID)
		switch {
		case w == nil:
		case c.To == wire.StateDown:
			d.run(flight.Event{Kind: flight.EvWorkerDown, Now: now, W: workerOf(w), Cause: cause, NoneLive: noneLive})
		case c.To == wire.StateUp:
			up = append(up, w)
		}
	}
	for _, w := range up {
		w.told.Store(w.progress.Load())
		d.run(flight.Event{Kind: flight.EvWorkerUp, Now: now, W: workerOf(w), Every: w.progressEvery()})
	}
}

// progressChanged tells the core of a worker's new progress interval,
// when a heartbeat changed it without a change of state.
func (d *Dispatcher) progressChanged(hb wire.Heartbeat) {
	w := d.mem.Get(hb.ID)
	if w == nil {
		return
	}
	p := w.progress.Load()
	if w.told.Swap(p) == p {
		return
	}
	d.run(flight.Event{Kind: flight.EvProgressEvery, Now: time.Now().UnixNano(), W: workerOf(w), Every: w.progressEvery()})
}

// workerGone handles "no responders" for a forward to a worker: it has no
// subscription left, so it goes down, without waiting for its heartbeats
// to stop, and every request waiting on it goes on to the next worker at
// once. On the worker's shared reply subject the broker's status reply
// carries no request id, so which forward found no subscriber is not known;
// all are sent on, their attempts left open, since a draining worker still
// answers what it holds.
func (d *Dispatcher) workerGone(workerID string) {
	w := d.mem.Get(workerID)
	if w == nil {
		return
	}
	if cs := d.mem.MarkDown(w, "no responders"); len(cs) > 0 {
		d.changes(cs, flight.DownNoResponders)
		return
	}
	// Already down (tried as a suspect): nothing sent its requests on yet.
	d.run(flight.Event{Kind: flight.EvWorkerDown, Now: time.Now().UnixNano(), W: workerOf(w), Cause: flight.DownLeft})
}

// progressEvery is w's progress interval, from its heartbeats.
func (w *member) progressEvery() time.Duration {
	return time.Duration(w.progress.Load()) * time.Millisecond
}

// onHeartbeat takes a heartbeat into the table if it passes the checks:
// at most wire.MaxHeartbeatSize, its id the last token of its subject, no
// subject field but the one derived from the id (wire.CheckHeartbeat).
// Anyone can publish heartbeats, so what it refuses is logged at most
// once a second, and never more than a line's worth of it.
func (d *Dispatcher) onHeartbeat(m *nats.Msg) {
	now := time.Now()
	if len(m.Data) > wire.MaxHeartbeatSize {
		d.badHeartbeat(now, m.Subject, fmt.Errorf("%w: %d bytes", wire.ErrHeartbeatTooLarge, len(m.Data)))
		return
	}
	hb, err := wire.DecodeHeartbeat(m.Data)
	if err == nil {
		err = d.subj.CheckHeartbeat(m.Subject, hb)
	}
	if err != nil {
		d.badHeartbeat(now, m.Subject, err)
		return
	}
	if hb.Subject == "" {
		hb.Subject = d.subj.Worker(hb.ID) // else it is this, as checked
	}
	cs, n := d.mem.Heartbeat(now, hb)
	if n != noticeNone {
		d.heartbeatNotice(now, hb, n)
	}
	d.changes(cs, flight.DownLeft)
	d.progressChanged(hb)
}

func (d *Dispatcher) badHeartbeat(now time.Time, subject string, err error) {
	if held, ok := d.guard.warn.badHeartbeat.allow(subject[strings.LastIndexByte(subject, '.')+1:], now); ok {
		d.log.Warn("bad heartbeat", "subject", clip(subject, maxLoggedField),
			"error", clip(err.Error(), maxLoggedError), "held_back", held)
	}
}

// heartbeatNotice logs what the table noticed about a heartbeat it was
// given, at most once a second for each kind. A stale heartbeat is not
// news: heartbeats overtake each other across a cluster.
func (d *Dispatcher) heartbeatNotice(now time.Time, hb wire.Heartbeat, n notice) {
	switch n {
	case noticeTableFull:
		if held, ok := d.guard.warn.tableFull.allow(now); ok {
			d.log.Warn("worker table full: heartbeat from a new worker ignored", "worker", hb.ID,
				"max_workers", d.cfg.MaxWorkers, "held_back", held)
		}
	case noticeConflict:
		if held, ok := d.guard.warn.conflict.allow(now); ok {
			d.log.Warn("worker id claimed by two live processes", "worker", hb.ID,
				"started_at", hb.StartedAt, "host", clip(hb.Host, maxLoggedField), "held_back", held)
		}
	case noticeContradiction:
		if held, ok := d.guard.warn.contradiction.allow(now); ok {
			d.log.Warn("worker heartbeats up after a draining heartbeat from the same process: one of them was not its own",
				"worker", hb.ID, "started_at", hb.StartedAt, "seq", hb.Seq, "held_back", held)
		}
	}
}

// maxHelloSize bounds a client hello worth reading; a real one is about
// 120 bytes.
const maxHelloSize = 4096

// onClient logs a client's hello or goodbye. Every field of it is the
// client's claim, and logged as one (claimed_*), cut to a bound: the
// dispatcher sees a message, not the connection that sent it.
func (d *Dispatcher) onClient(m *nats.Msg) {
	var h wire.ClientHello
	if len(m.Data) > maxHelloSize || json.Unmarshal(m.Data, &h) != nil {
		return
	}
	msg, limit := "client connected", &d.guard.warn.hello
	if m.Subject == d.subj.ClientDisconnect() {
		msg, limit = "client disconnected", &d.guard.warn.goodbye
	}
	// Anyone may say hello, as often as it likes: a line a second per name.
	held, ok := limit.allow(h.Name, time.Now())
	if !ok {
		return
	}
	d.log.Info(msg, "client", clip(h.Name, maxLoggedField), "claimed_host", clip(h.Host, maxLoggedField),
		"claimed_ip", clip(h.IP, maxLoggedField), "claimed_pid", h.PID, "claimed_nats_client_id", h.ClientID, "held_back", held)
}
