// Package loadcheck sends a bounded load through a running Bilancia
// deployment, checks every reply against the result computed here with
// package calc, optionally injects one fault mid-run, and reports what the
// fault cost in the fault matrix's format:
//
//	fault=... sent=... ok=... lost=... wrong=... dup=... p99=...ms detect=...ms recover=...ms
//
// It is the engine of scripts/compose-test (through the hidden `bilancia
// health load`), which injects faults into containers; the fault itself is
// a function here, so the package knows nothing about Docker.
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
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

// Detection methods for Config.Detect.
const (
	// DetectResend: the first request answered after the client sent it
	// again, once the fault was injected (a dispatcher vanished).
	DetectResend = "resend"
	// DetectView: the first status poll after the injection showing the
	// deployment not whole: an expected dispatcher not answering, or one
	// listing an expected worker not up.
	DetectView = "view"
	// DetectWorkerPrefix + id: the first status answer after the injection
	// listing that worker not up (draining, down, ejected or absent).
	DetectWorkerPrefix = "worker-left:"
	// DetectDisconnect: the first load connection to lose its broker after
	// the injection (the client noticed).
	DetectDisconnect = "disconnect"
)

// View is the deployment when whole: these dispatchers answer status and
// each lists these workers up.
type View struct {
	Dispatchers []string
	Workers     []string
}

func (v View) empty() bool { return len(v.Dispatchers) == 0 }

// Config describes one run. Zero values mean the documented defaults.
type Config struct {
	// URLs are the brokers. Load connection i tries them in order starting
	// at URLs[i mod len], so that the connections spread over the brokers
	// and each broker carries some of the load; required.
	URLs []string
	// Options are extra nats.go options (credentials, TLS).
	Options []nats.Option
	Prefix  string // "" = "calc"

	Requests int           // requests to send; 0 = 3000
	Rate     float64       // requests per second, open loop; 0 = 250
	Clients  int           // NATS connections sharing the load; 0 = 4
	MaxOpen  int           // requests in flight at most; 0 = 400
	Timeout  time.Duration // each request's deadline; 0 = 10s
	// SleepEvery makes one request in SleepEvery a "sleep", whose result
	// is the worker's id (a slow job in flight when the fault hits). 0 =
	// 10; negative = none. Sleep is its length; 0 = 20ms.
	SleepEvery int
	Sleep      time.Duration

	// Expect is the whole deployment; empty means no view checks (then
	// WaitWhole, Rejoin and DetectView do nothing).
	Expect View
	// WaitWhole bounds the wait for Expect before the load starts;
	// 0 = 60s.
	WaitWhole time.Duration

	// Fault names the fault in the report; "" = "none".
	Fault string
	// Inject is called once InjectAt requests were sent, while the load
	// goes on; nil = no fault.
	Inject func(context.Context) error
	// InjectAt is the number of requests sent before Inject; 0 =
	// Requests/4.
	InjectAt int
	// Heal, if set, is called HealAfter after Inject started.
	Heal      func(context.Context) error
	HealAfter time.Duration
	// Window is how long after the injection requests count as during the
	// fault (p99, and the last request hurt for recover); 0 = HealAfter +
	// 3s.
	Window time.Duration
	// Detect says how detection is measured: DetectResend, DetectView,
	// DetectDisconnect, DetectWorkerPrefix+id, several of them comma
	// separated (the earliest found counts), or "" for none.
	Detect string
	// Rejoin makes recovery also wait for Expect to be whole again after
	// the heal (or after Inject returned, if there is no heal); recover is
	// then the later of that and the last request hurt. RejoinWait bounds
	// the wait after the load (0 = 60s).
	Rejoin     bool
	RejoinWait time.Duration

	// PollEvery is the status poll period; 0 = 100ms.
	PollEvery time.Duration
	// Logf hears about progress; nil = silent.
	Logf func(format string, args ...any)
}

func (c *Config) defaults() error {
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no broker URL", ErrConfig)
	}
	if c.Requests < 0 || c.Rate < 0 || c.Clients < 0 || c.MaxOpen < 0 || c.InjectAt < 0 {
		return fmt.Errorf("%w: negative count or rate", ErrConfig)
	}
	if c.Requests == 0 {
		c.Requests = 3000
	}
	if c.Rate == 0 {
		c.Rate = 250
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.MaxOpen == 0 {
		c.MaxOpen = 400
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.SleepEvery == 0 {
		c.SleepEvery = 10
	}
	if c.Sleep <= 0 {
		c.Sleep = 20 * time.Millisecond
	}
	if c.WaitWhole <= 0 {
		c.WaitWhole = 60 * time.Second
	}
	if c.Fault == "" {
		c.Fault = "none"
	}
	if c.InjectAt == 0 {
		c.InjectAt = c.Requests / 4
	}
	if c.InjectAt > c.Requests {
		return fmt.Errorf("%w: inject at %d of %d requests", ErrConfig, c.InjectAt, c.Requests)
	}
	if c.Window <= 0 {
		c.Window = c.HealAfter + 3*time.Second
	}
	if c.RejoinWait <= 0 {
		c.RejoinWait = 60 * time.Second
	}
	if c.PollEvery <= 0 {
		c.PollEvery = 100 * time.Millisecond
	}
	for _, d := range detectors(c.Detect) {
		switch {
		case d == DetectResend, d == DetectView, d == DetectDisconnect:
		case strings.HasPrefix(d, DetectWorkerPrefix) && len(d) > len(DetectWorkerPrefix):
		default:
			return fmt.Errorf("%w: detect %q is not %s, %s, %s or %s<id>", ErrConfig, d, DetectResend, DetectView, DetectDisconnect, DetectWorkerPrefix)
		}
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return nil
}

// Report is what a run measured.
type Report struct {
	Fault string
	// Sent requests; OK answered with the right result; Lost without a
	// successful reply (an error or none in time); Wrong answered with a
	// wrong result; Dup sends answered more than once on the wire (a
	// resent request may be answered once per send: that is not a dup).
	Sent, OK, Lost, Wrong, Dup int
	// Resent requests the client had to send more than once; WireDup
	// replies that reached the client beyond the first of each request
	// (the answers to resends, dropped by the client).
	Resent, WireDup int
	// E503 failed requests answered 503 (no worker or no dispatcher).
	E503 int
	// P99 is the 99th percentile latency of the requests sent during the
	// fault window (of all requests when there is no fault).
	P99 time.Duration
	// Detect is from the injection to the detection (see Config.Detect);
	// Recover from the injection to the later of the last request hurt by
	// the fault (failed, resent, or retried on a second worker) and, with
	// Config.Rejoin, the deployment whole again. Recover is 0 when nothing
	// was hurt and no rejoin was asked.
	Detect, Recover     time.Duration
	Detected, Recovered bool
	RejoinAsked         bool
	// Reconnects counts the load connections' reconnections;
	// ClientDetect is from the injection to the first of them losing its
	// broker, if one did.
	Reconnects     int
	ClientDetect   time.Duration
	ClientDetected bool
	// ReadyAfter is how long the deployment took to be whole before the
	// load; InjectTook and HealTook how long the fault functions ran.
	ReadyAfter, InjectTook, HealTook time.Duration
	// Requests is how many requests were meant to be sent.
	Requests int
	// Examples of failures, for the log.
	Failures []string
	// FaultErr is an error of Inject or Heal.
	FaultErr error
}

// Line is the report in the fault matrix's format, with extra fields after.
func (r *Report) Line() string {
	s := fmt.Sprintf("fault=%s sent=%d ok=%d lost=%d wrong=%d dup=%d p99=%dms detect=%s recover=%s",
		r.Fault, r.Sent, r.OK, r.Lost, r.Wrong, r.Dup, r.P99.Milliseconds(),
		ms(r.Detect, r.Detected), ms(r.Recover, r.Recovered))
	s += fmt.Sprintf(" resent=%d wire_dup=%d e503=%d reconnects=%d ready_after=%dms",
		r.Resent, r.WireDup, r.E503, r.Reconnects, r.ReadyAfter.Milliseconds())
	if r.Fault != "none" {
		s += fmt.Sprintf(" inject_took=%dms", r.InjectTook.Milliseconds())
	}
	if r.ClientDetected {
		s += fmt.Sprintf(" client_detect=%dms", r.ClientDetect.Milliseconds())
	}
	if r.HealTook > 0 {
		s += fmt.Sprintf(" heal_took=%dms", r.HealTook.Milliseconds())
	}
	return s
}

func ms(d time.Duration, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Err says what the run found wrong: a request without one correct reply,
// a send answered twice, a load cut short, no rejoin when one was asked,
// or a fault that could not be injected. nil means the run passed.
func (r *Report) Err() error {
	var errs []string
	if r.FaultErr != nil {
		errs = append(errs, r.FaultErr.Error())
	}
	if r.Sent < r.Requests {
		errs = append(errs, fmt.Sprintf("sent %d of %d requests", r.Sent, r.Requests))
	}
	if r.Lost > 0 {
		errs = append(errs, fmt.Sprintf("%d requests lost", r.Lost))
	}
	if r.Wrong > 0 {
		errs = append(errs, fmt.Sprintf("%d wrong results", r.Wrong))
	}
	if r.Dup > 0 {
		errs = append(errs, fmt.Sprintf("%d sends answered more than once", r.Dup))
	}
	if r.RejoinAsked && !r.Recovered {
		errs = append(errs, "the deployment was not whole again after the fault")
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

// run is one Run in progress.
type run struct {
	cfg     Config
	conns   []*nats.Conn
	clients []*client.Client
	poller  *poller

	wire Wire // replies per Calc-Request-Id seen on the wire

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
	rep := &Report{Fault: cfg.Fault, Requests: cfg.Requests, RejoinAsked: cfg.Rejoin && !cfg.Expect.empty()}

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
	cfg.Logf("sending %d requests at %.0f/s through %d connections", len(recs), cfg.Rate, len(r.clients))
	_, loadErr := Send(ctx, r.clients, recs, Pace{Rate: cfg.Rate, MaxOpen: cfg.MaxOpen, Timeout: cfg.Timeout}, func(i int) {
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
	for i := range r.cfg.Clients {
		name := fmt.Sprintf("loadcheck-c%d", i)
		nc, err := r.dial(name, i)
		if err != nil {
			return err
		}
		r.conns = append(r.conns, nc)
		if err := r.wire.Watch(nc); err != nil {
			return fmt.Errorf("%w: %w", ErrConnect, err)
		}
		c, err := client.Connect(client.Config{Conn: nc, Name: name, Prefix: r.cfg.Prefix, Timeout: r.cfg.Timeout})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrConnect, err)
		}
		r.clients = append(r.clients, c)
	}
	nc, err := r.dial("loadcheck-status", 0)
	if err != nil {
		return err
	}
	r.conns = append(r.conns, nc)
	p, err := startPoller(nc, wire.Subjects{Prefix: r.cfg.Prefix}, r.cfg.PollEvery)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConnect, err)
	}
	r.poller = p
	return nil
}

// dial connects to the brokers starting at URLs[first mod len]. It pings
// every second, so that a connection to a broker cut off the network is
// given up in seconds rather than minutes, and it ignores the addresses the
// brokers advertise (container addresses, say, behind published ports): it
// only ever dials the URLs it was given.
func (r *run) dial(name string, first int) (*nats.Conn, error) {
	n := len(r.cfg.URLs)
	urls := make([]string, 0, n)
	for i := range n {
		urls = append(urls, r.cfg.URLs[(first+i)%n])
	}
	opts := append([]nats.Option{
		nats.Name(name),
		nats.DontRandomize(),
		nats.IgnoreDiscoveredServers(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		nats.PingInterval(time.Second),
		nats.MaxPingsOutstanding(3),
		nats.Timeout(2 * time.Second),
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
	}, r.cfg.Options...)
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
	for _, c := range r.clients {
		c.Close()
	}
	for _, nc := range r.conns {
		nc.Close()
	}
}

// faultRun is the fault's progress; its times are written before done is
// closed.
type faultRun struct {
	injected, injectDone, healed time.Time
	injectTook, healTook         time.Duration
	err                          error
	done                         chan struct{} // nil: never started
}

func (f *faultRun) wait() {
	if f.done != nil {
		<-f.done
	}
}

// faultTimeout bounds each of Inject and Heal.
const faultTimeout = 60 * time.Second

// start runs Inject, then Heal after HealAfter, on their own goroutine, so
// that the load goes on meanwhile.
func (f *faultRun) start(ctx context.Context, cfg *Config) {
	f.done = make(chan struct{})
	f.injected = time.Now()
	go func() {
		defer close(f.done)
		cfg.Logf("injecting %s", cfg.Fault)
		ictx, cancel := context.WithTimeout(ctx, faultTimeout)
		err := cfg.Inject(ictx)
		cancel()
		f.injectDone = time.Now()
		f.injectTook = f.injectDone.Sub(f.injected)
		if err != nil {
			f.err = fmt.Errorf("inject %s: %w", cfg.Fault, err)
			return
		}
		if cfg.Heal == nil {
			return
		}
		t := time.NewTimer(time.Until(f.injected.Add(cfg.HealAfter)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			f.err = ctx.Err()
			return
		}
		cfg.Logf("healing %s", cfg.Fault)
		f.healed = time.Now()
		hctx, cancel := context.WithTimeout(ctx, faultTimeout)
		defer cancel()
		if err := cfg.Heal(hctx); err != nil {
			f.err = fmt.Errorf("heal %s: %w", cfg.Fault, err)
		}
		f.healTook = time.Since(f.healed)
	}()
}

// measure fills the report from the records, the wire counters and the
// polls.
func (r *run) measure(rep *Report, all []*Record, f *faultRun, rejoinAt time.Time, rejoined bool) {
	cfg := &r.cfg
	wireN := r.wire.Counts()
	rep.Reconnects = int(r.reconnects.Load())

	var recs []*Record
	for _, rc := range all {
		if !rc.Sent.IsZero() {
			recs = append(recs, rc)
		}
	}
	rep.Sent = len(recs)
	inj := f.injected
	from, to := inj.Add(-3*time.Second), inj.Add(cfg.Window)
	var during []time.Duration
	var lastHurt, firstResend time.Time
	for _, rc := range recs {
		switch {
		case rc.OK():
			rep.OK++
		case rc.Wrong != "":
			rep.Wrong++
			rep.example(rc.Wrong)
		default:
			rep.Lost++
			if rc.Code() == wire.CodeUnavailable {
				rep.E503++
			}
			rep.example(fmt.Sprintf("%s: %v (after %v)", rc.Cmd, rc.Err, rc.Done.Sub(rc.Sent).Round(time.Millisecond)))
		}
		if rc.Res != nil {
			if n := wireN[rc.Res.ID]; n > rc.Res.Sends {
				rep.Dup++
				rep.example(fmt.Sprintf("%s: %d replies to %d sends", rc.Res.ID, n, rc.Res.Sends))
			}
			if rc.Res.Sends > 1 {
				rep.Resent++
				if !inj.IsZero() && !rc.Done.Before(inj) && (firstResend.IsZero() || rc.Done.Before(firstResend)) {
					firstResend = rc.Done
				}
			}
		}
		if inj.IsZero() || !rc.Sent.Before(inj) && rc.Sent.Before(to) {
			during = append(during, rc.Done.Sub(rc.Sent))
		}
		if !inj.IsZero() && rc.Hurt() && !rc.Sent.Before(from) && rc.Sent.Before(to) && rc.Done.After(lastHurt) {
			lastHurt = rc.Done
		}
	}
	for _, n := range wireN {
		rep.WireDup += max(0, n-1)
	}
	rep.P99 = Percentile(during, 99)
	if inj.IsZero() {
		return
	}

	if at, ok := r.firstDisconnect(inj); ok {
		rep.ClientDetect, rep.ClientDetected = at.Sub(inj), true
	}
	polls := r.poller.snapshot(true)
	var det time.Time
	for _, d := range detectors(cfg.Detect) {
		var at time.Time
		var ok bool
		switch {
		case d == DetectResend:
			at, ok = firstResend, !firstResend.IsZero()
		case d == DetectDisconnect:
			at, ok = r.firstDisconnect(inj)
		case d == DetectView && !cfg.Expect.empty():
			at, ok = firstNotWhole(polls, cfg.Expect, inj)
		case strings.HasPrefix(d, DetectWorkerPrefix):
			at, ok = firstWorkerLeft(polls, strings.TrimPrefix(d, DetectWorkerPrefix), inj)
		}
		if ok && (det.IsZero() || at.Before(det)) {
			det = at
		}
	}
	if !det.IsZero() {
		rep.Detect, rep.Detected = max(0, det.Sub(inj)), true
	}

	end := lastHurt
	if rep.RejoinAsked {
		if !rejoined {
			return // Recovered stays false
		}
		if rejoinAt.After(end) {
			end = rejoinAt
		}
	}
	rep.Recovered = true
	if !end.IsZero() {
		rep.Recover = max(0, end.Sub(inj))
	}
}

// firstDisconnect is the first loss of a broker by a load connection at
// or after since.
func (r *run) firstDisconnect(since time.Time) (time.Time, bool) {
	r.discMu.Lock()
	defer r.discMu.Unlock()
	var first time.Time
	for _, t := range r.disconnects {
		if !t.Before(since) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// detectors splits Config.Detect.
func detectors(s string) []string {
	var out []string
	for _, d := range strings.Split(s, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

func (rep *Report) example(s string) {
	if len(rep.Failures) < 10 {
		rep.Failures = append(rep.Failures, s)
	}
}
