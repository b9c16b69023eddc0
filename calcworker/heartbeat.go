package calcworker

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// heartbeatTick sends a heartbeat from the timer and sets the next. A
// timer rather than a goroutine per worker: a process of a thousand
// simulated workers would park a thousand goroutines for it.
func (w *Worker) heartbeatTick() {
	w.hbMu.Lock()
	defer w.hbMu.Unlock()
	if w.hbTimer == nil {
		return // stopped: the draining heartbeat has the last word
	}
	w.heartbeat()
	w.hbTimer.Reset(jittered(w.cfg.Heartbeat))
}

// stopHeartbeats ends the timer's heartbeats; none is sent after it
// returns.
func (w *Worker) stopHeartbeats() {
	w.hbMu.Lock()
	defer w.hbMu.Unlock()
	if w.hbTimer != nil {
		w.hbTimer.Stop()
		w.hbTimer = nil
	}
}

// jittered spreads d by ±10%.
func jittered(d time.Duration) time.Duration {
	j := d / 10
	if j <= 0 {
		return d
	}
	return d - j + rand.N(2*j+1)
}

// Heartbeat returns the heartbeat the worker would send now.
func (w *Worker) Heartbeat() wire.Heartbeat {
	host, _ := os.Hostname()
	return wire.Heartbeat{
		ID:          w.cfg.ID,
		Subject:     w.Subject(),
		State:       w.state.Load().(string),
		Seq:         w.seq.Add(1),
		IntervalMS:  w.cfg.Heartbeat.Milliseconds(),
		Inflight:    w.inflight.Load(),
		Served:      w.served.Load(),
		Errors:      w.errs.Load(),
		Concurrency: w.cfg.Concurrency,
		ProgressMS:  max(w.cfg.Progress.Milliseconds(), 0),
		StartedAt:   w.start,
		Version:     wire.Version,
		Host:        host,
	}
}

func (w *Worker) heartbeat() {
	b, _ := json.Marshal(w.Heartbeat())
	err := w.nc.Publish(w.subj.Heartbeat(w.cfg.ID), b)
	if err == nil {
		w.cfg.Metrics.heartbeat()
	} else if w.cfg.OnError != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		w.cfg.OnError(fmt.Errorf("calcworker: heartbeat: %w", err))
	}
}

// watchReconnects heartbeats as soon as the connection is back after it
// was lost, perhaps on another broker: a dispatcher that heard "no
// responders" from the worker meanwhile took it for gone, and with no
// other worker holds its requests only briefly for one to come back
// (dispatcher/hold.go). The workers of a Shared pool, a simulation, wait
// for their next heartbeat instead of a goroutine each.
func (w *Worker) watchReconnects() {
	if w.cfg.Shared != nil {
		return
	}
	w.stopWatch = natsutil.OnReconnect(w.nc, w.heartbeat)
}

// stopWatching ends watchReconnects.
func (w *Worker) stopWatching() {
	if w.stopWatch != nil {
		w.stopWatch()
	}
}
