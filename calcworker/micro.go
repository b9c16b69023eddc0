package calcworker

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/internal/microsvc"
	"github.com/bilancia/bilancia/wire"
)

// ServiceName is the NATS micro service workers register as, so that
// `nats micro ls|info|stats|ping bilancia-worker` lists them, each under
// its worker id.
const ServiceName = wire.WorkerService

// startMicro answers micro discovery for this worker. Its endpoints are
// served by the worker's own subscriptions; their figures come from its
// counters, so that the requests cost nothing more.
func (w *Worker) startMicro() error {
	eps := []microsvc.Endpoint{{Name: "calc", Subject: w.Subject(), Counts: w.counts}}
	if w.cfg.ServeDirect {
		// The two subjects share the counters: listed once, with them.
		eps[0].Metadata = map[string]string{"also": w.subj.Direct()}
	}
	svc, err := microsvc.Start(w.nc, microsvc.Config{
		Name: ServiceName, ID: w.cfg.ID, Version: wire.Version,
		Description: "Bilancia calc worker",
		Metadata: map[string]string{
			"id": w.cfg.ID, "prefix": w.subj.Root(), "subject": w.Subject(),
			"concurrency": strconv.Itoa(w.cfg.Concurrency),
		},
		Endpoints: eps,
		Subscribe: w.subscribeMicro,
		ReplyOK:   func(subj string) bool { return w.replyOK(&nats.Msg{Subject: "$SRV", Reply: subj}) },
	})
	if err != nil {
		return err
	}
	w.micro = svc
	return nil
}

// counts are the calc endpoint's figures: the requests answered, the
// error replies among them, and the time they took from arrival.
func (w *Worker) counts() microsvc.Counts {
	return microsvc.Counts{Requests: w.served.Load(), Errors: w.errs.Load(), Processing: time.Duration(w.busy.Load())}
}

// subscribeMicro makes a discovery subscription: through the pool of a
// Shared worker, so that a thousand of them park no goroutine each.
func (w *Worker) subscribeMicro(subj string, handle nats.MsgHandler) (*nats.Subscription, error) {
	if w.cfg.Shared != nil {
		return w.cfg.Shared.subscribeFunc(w, subj, handle)
	}
	return w.nc.Subscribe(subj, handle)
}

func (w *Worker) stopMicro() {
	if w.micro != nil {
		w.micro.Stop()
	}
}
