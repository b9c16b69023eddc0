package dispatcher

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/bilancia/bilancia/internal/microsvc"
	"github.com/bilancia/bilancia/wire"
)

// ServiceName is the NATS micro service dispatchers register as, so
// that `nats micro ls|info|stats|ping bilancia-dispatcher` lists them.
const ServiceName = wire.DispatcherService

// startMicro answers micro discovery for this dispatcher. Its endpoints
// are served by the dispatcher's own subscriptions; their figures come
// from its counters, so that the requests cost nothing more.
func (d *Dispatcher) startMicro() error {
	svc, err := microsvc.Start(d.nc, microsvc.Config{
		Name: ServiceName, ID: d.cfg.ID, Version: wire.Version,
		Description: "Bilancia dispatcher: balances calc requests over the workers",
		Metadata: map[string]string{
			"id": d.cfg.ID, "prefix": d.subj.Root(), "subject": d.cfg.Subject, "strategy": d.cfg.Strategy,
			"max_inflight": strconv.Itoa(d.cfg.MaxInflight),
		},
		ReplyOK: func(subj string) bool { return d.replyOK(respMicro, subj) },
		Endpoints: []microsvc.Endpoint{
			{Name: "request", Subject: d.cfg.Subject, QueueGroup: wire.DispatcherQueue, Counts: d.requestCounts},
			{Name: "status", Subject: d.subj.Status(), Counts: d.served.status.counts},
			{Name: "ctl", Subject: d.subj.CtlAll(), Counts: d.served.ctl.counts},
		},
	})
	if err != nil {
		return err
	}
	d.micro = svc
	return nil
}

// requestCounts are the request endpoint's figures: every request
// answered, the failed ones, and their total latency.
func (d *Dispatcher) requestCounts() microsvc.Counts {
	served, failed := d.stats.served.Load(), d.stats.failed.Load()
	return microsvc.Counts{Requests: served + failed, Errors: failed, Processing: time.Duration(d.metrics.latency.sum.Load())}
}

// served counts the status and control requests answered, for micro's
// STATS.
type served struct {
	status, ctl endpointCount
}

type endpointCount struct {
	requests, errors atomic.Uint64
	busy             atomic.Int64 // nanoseconds
}

// add counts a request that took since start, failed or not.
func (c *endpointCount) add(start time.Time, failed bool) {
	c.requests.Add(1)
	if failed {
		c.errors.Add(1)
	}
	c.busy.Add(int64(time.Since(start)))
}

func (c *endpointCount) counts() microsvc.Counts {
	return microsvc.Counts{Requests: c.requests.Load(), Errors: c.errors.Load(), Processing: time.Duration(c.busy.Load())}
}

func (d *Dispatcher) stopMicro() {
	if d.micro != nil {
		d.micro.Stop()
	}
}
