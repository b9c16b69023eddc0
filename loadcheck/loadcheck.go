// Package loadcheck sends a bounded load through a running Bilancia
// deployment, checks every reply against the result computed here with
// package calc, optionally injects one fault mid-run, and reports what the
// fault cost in the fault matrix's format:
//
//	fault=... sent=... ok=... lost=... wrong=... dup=... p99=...ms detect=...ms recover=...ms
//
// It is the engine of scripts/compose-test (through the hidden `bilancia
// health load`), which injects faults into containers; the fault itself is
// a function here, so the package knows nothing about Docker. The chaos
// matrix (e2e/chaos_test.go) shares its load generator (Draw, Dial, Send)
// and its scorer (Measure, Columns), and times detection in its own way.
//
// What it watches, besides the replies: the dispatchers' views of the
// workers, polled on <prefix>.status every PollEvery. Detection and rejoin
// times come from those polls (so they carry the poll period as
// granularity) or from the replies; see Config.Detect and Config.Rejoin.
package loadcheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/internal/natsutil"
	"github.com/bilancia/bilancia/wire"
)

// Errors returned by Run; a run that went through but found the system
// wanting is not an error of Run: see Report.Err.
var (
	// ErrConfig reports a Config that cannot describe a run.
	ErrConfig = errors.New("loadcheck: invalid config")
	// ErrNotWhole reports a deployment that did not become whole (every
	// expected dispatcher listing every expected worker up) within
	// Config.WaitWhole.
	ErrNotWhole = errors.New("loadcheck: deployment not whole")
	// ErrConnect reports a broker that could not be reached at the start.
	ErrConnect = errors.New("loadcheck: connect")
)

// run is one Run in progress.
type run struct {
	cfg    Config
	load   *Clients
	status *nats.Conn // the poller's
	poller *poller

	reconnects atomic.Int64

	discMu      sync.Mutex
	disconnects []time.Time // of the load connections
}

// Run waits for the deployment to be whole, sends the load, injects the
// fault, waits for the rejoin if asked, and measures. It returns a report
// whenever the load ran, even with an error (ctx cancelled, load cut short);
// Report.Err says whether the system passed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg}
	defer r.close()
	if err := r.connect(); err != nil {
		return nil, err
	}
	rep := &Report{Columns: Columns{Fault: cfg.Fault}, Requests: cfg.Requests, RejoinAsked: cfg.Rejoin && !cfg.Expect.empty()}

	if !cfg.Expect.empty() {
		start := time.Now()
		if _, err := r.poller.waitWhole(ctx, cfg.Expect, start, cfg.WaitWhole); err != nil {
			return nil, fmt.Errorf("%w within %v: %v", ErrNotWhole, cfg.WaitWhole, err)
		}
		rep.ReadyAfter = time.Since(start)
		cfg.Logf("deployment whole after %v", rep.ReadyAfter.Round(time.Millisecond))
	}

	recs := Draw(rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), cfg.Requests, cfg.SleepEvery, cfg.Sleep)
	f := &faultRun{}
	cfg.Logf("sending %d requests at %.0f/s through %d connections", len(recs), cfg.Rate, len(r.load.List))
	_, loadErr := Send(ctx, r.load.List, recs, Pace{Rate: cfg.Rate, MaxOpen: cfg.MaxOpen, Timeout: cfg.Timeout}, func(i int) {
		if i == cfg.InjectAt && cfg.Inject != nil {
			f.start(ctx, &r.cfg)
		}
	})
	f.wait()
	rep.FaultErr = f.err
	rep.InjectTook, rep.HealTook = f.injectTook, f.healTook

	var rejoinAt time.Time
	rejoined := false
	if rep.RejoinAsked && !f.injected.IsZero() {
		since := f.healed
		if since.IsZero() {
			since = f.injectDone
		}
		at, err := r.poller.waitWhole(ctx, cfg.Expect, since, cfg.RejoinWait)
		if err != nil {
			cfg.Logf("deployment not whole again within %v: %v", cfg.RejoinWait, err)
		} else {
			rejoinAt, rejoined = at, true
			cfg.Logf("deployment whole again %v after the injection", rejoinAt.Sub(f.injected).Round(time.Millisecond))
		}
	}
	// Stopping the polls waits for the answers to the last one, which
	// also gives late replies time to reach the wire counters.
	r.poller.stop()

	r.measure(rep, recs, f, rejoinAt, rejoined)
	return rep, loadErr
}

// connect opens the load connections, their clients and the poller.
func (r *run) connect() error {
	load, err := Dial(r.cfg.Clients, "loadcheck", r.dial, client.Config{Prefix: r.cfg.Prefix, Timeout: r.cfg.Timeout})
	if err != nil {
		return err
	}
	r.load = load
	nc, err := r.dial("loadcheck-status", 0)
	if err != nil {
		return err
	}
	r.status = nc
	p, err := startPoller(nc, wire.Subjects{Prefix: r.cfg.Prefix}, r.cfg.PollEvery)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConnect, err)
	}
	r.poller = p
	return nil
}

// dial connects to the brokers starting at URLs[first mod len]. Like
// every role's connection it reconnects forever (natsutil.Options); it also
// pings every second, so that a connection to a broker cut off the network is
// given up in seconds rather than minutes, and it ignores the addresses the
// brokers advertise (container addresses, say, behind published ports): it
// only ever dials the URLs it was given.
func (r *run) dial(name string, first int) (*nats.Conn, error) {
	n := len(r.cfg.URLs)
	urls := make([]string, 0, n)
	for i := range n {
		urls = append(urls, r.cfg.URLs[(first+i)%n])
	}
	opts := append(natsutil.Options(name, nil),
		nats.DontRandomize(),
		nats.IgnoreDiscoveredServers(),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
		nats.Timeout(2*time.Second),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			r.reconnects.Add(1)
			r.cfg.Logf("%s reconnected to %s", name, nc.ConnectedUrlRedacted())
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil {
				return // closed by us
			}
			r.cfg.Logf("%s disconnected: %v", name, err)
			r.discMu.Lock()
			r.disconnects = append(r.disconnects, time.Now())
			r.discMu.Unlock()
		}),
	)
	opts = append(opts, r.cfg.Options...)
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("%w to %s: %w", ErrConnect, strings.Join(urls, ","), err)
	}
	return nc, nil
}

func (r *run) close() {
	if r.poller != nil {
		r.poller.stop()
	}
	if r.load != nil {
		r.load.Close()
	}
	if r.status != nil {
		r.status.Close()
	}
}
