// Package bench is Bilancia's load generator: it sends a mix of requests
// through the client library, closed-loop (a fixed number of requests
// outstanding) or open-loop (a fixed rate), and reports throughput, latency
// percentiles from an HdrHistogram, errors by code and the requests each
// worker served. Compare runs the same load through a dispatcher and
// straight to the workers' queue group, on child processes it starts.
//
// The package does not log; progress goes to a callback and reports to the
// writer the caller gives.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

// Errors returned by Run.
var (
	// ErrConfig reports a Config that cannot describe a run.
	ErrConfig = errors.New("bench: invalid config")
)

// Defaults applied where Config leaves a field at its zero value.
const (
	DefaultClients        = 4
	DefaultConcurrency    = 16
	DefaultMaxOutstanding = 1000
	DefaultDuration       = 10 * time.Second
	DefaultTimeout        = 10 * time.Second
	DefaultProgressEvery  = 250 * time.Millisecond
)

// Histogram range: 1 µs to 2 minutes, 3 significant digits.
const (
	histMin = 1
	histMax = int64(2 * time.Minute / time.Microsecond)
)

// Config describes one run. Zero values mean the documented defaults.
type Config struct {
	URL     string        // NATS URL; "" = nats.DefaultURL
	Options []nats.Option // credentials, TLS
	Prefix  string        // subject prefix; "" = "calc"
	// Subject is where requests go; "" = <prefix>.request (the
	// dispatchers). <prefix>.direct reaches the workers' queue group.
	Subject string
	Name    string // client name prefix; "" = "bench"

	// Clients is the number of NATS connections sharing the load. 0 = 4.
	Clients int
	// Concurrency is the number of requests outstanding in a closed-loop
	// run: each of as many loops sends a request when its last one is
	// answered. 0 = 16. Ignored when Rate is set.
	Concurrency int
	// Rate makes the run open-loop: requests are due at this many per
	// second whatever the replies do. 0 = closed loop.
	Rate float64
	// MaxOutstanding bounds requests outstanding in an open-loop run; a
	// request due while the bound is reached is not sent and counts as
	// missed. 0 = 1000.
	MaxOutstanding int

	// Duration is how long to measure; Requests, if set, stops the run
	// after that many requests (closed loop: sent; open loop: due),
	// whichever comes first. Both 0 = 10s.
	Duration time.Duration
	Requests int
	// Warmup runs the same load this long before measuring; its requests
	// are not counted. 0 = none.
	Warmup time.Duration

	Mix *Mix // nil = DefaultMix
	// Timeout is each request's deadline. 0 = 10s.
	Timeout time.Duration
	// MaxAttempts is the client's sends per request. 0 = 1: a benchmark
	// counts a slow reply as slow, not as a reason to send again.
	MaxAttempts int

	// Progress, if set, is called every ProgressEvery (0 = 250ms) while
	// the run goes, and once more at its end with Final set.
	Progress      func(Progress)
	ProgressEvery time.Duration

	// measured, if set, is called when measuring begins and when the run
	// has ended (Compare reads CPU times there).
	measured func(end bool)
}

// Progress is a run's state for a progress display.
type Progress struct {
	Elapsed  time.Duration // since measuring began (negative during warmup)
	Duration time.Duration // planned, or 0 when bounded by Requests only
	Done     uint64        // replies measured so far, errors included
	Requests uint64        // planned requests, or 0 when bounded by time only
	Errors   uint64
	Missed   uint64
	Rate     float64 // replies per second since the last call
	Warmup   bool
	Final    bool
}

// Report is the outcome of a run. Latencies are in milliseconds.
type Report struct {
	Target         string  `json:"target,omitempty"` // a label set by Compare
	Subject        string  `json:"subject"`
	Mode           string  `json:"mode"` // "closed" or "open"
	Clients        int     `json:"clients"`
	Concurrency    int     `json:"concurrency,omitempty"`
	Rate           float64 `json:"rate,omitempty"`
	MaxOutstanding int     `json:"max_outstanding,omitempty"`
	Mix            string  `json:"mix"`
	Elapsed        float64 `json:"elapsed_s"`
	// Sent counts the measured requests that ended, OK + Errors; a request
	// cut short by cancelling the run counts in none of them.
	Sent   uint64 `json:"sent"`
	OK     uint64 `json:"ok"`
	Errors uint64 `json:"errors"`
	// Missed counts open-loop requests that were due while MaxOutstanding
	// were outstanding, and so were not sent.
	Missed uint64 `json:"missed,omitempty"`
	// Retries counts the clients' extra sends (MaxAttempts > 1, or no
	// responders).
	Retries uint64 `json:"retries,omitempty"`
	// Throughput is successful replies per second.
	Throughput float64 `json:"throughput_rps"`
	// Latency of successful replies: closed loop from send to reply; open
	// loop from the time the request was due, so that a slow system is not
	// flattered by sending late (no coordinated omission).
	Latency      Latency           `json:"latency_ms"`
	ErrorsByCode map[string]uint64 `json:"errors_by_code,omitempty"`
	ErrorSamples map[string]string `json:"error_samples,omitempty"` // the first message of each code
	Workers      map[string]uint64 `json:"workers"`                 // successful replies per worker
	Ops          []OpReport        `json:"ops,omitempty"`           // per mix entry, when there are several

	hist *hdrhistogram.Histogram
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// OpReport is the latency of one mix entry.
type OpReport struct {
	Template string  `json:"template"`
	OK       uint64  `json:"ok"`
	Latency  Latency `json:"latency_ms"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50:  ms(h.ValueAtQuantile(50)),
		P90:  ms(h.ValueAtQuantile(90)),
		P99:  ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)),
		Max:  ms(h.Max()),
		Mean: h.Mean() / 1000,
	}
}

// codeOther labels errors that are not service errors (a closed
// connection, a failed send).
const codeOther = "other"

// shard collects results; loops spread over shards so that they seldom
// wait on each other's lock.
type shard struct {
	mu      sync.Mutex
	hists   []*hdrhistogram.Histogram // per mix entry
	errs    map[string]uint64
	samples map[string]string
	workers map[string]uint64
}

func newShard(entries int) *shard {
	s := &shard{errs: map[string]uint64{}, samples: map[string]string{}, workers: map[string]uint64{}}
	for range entries {
		s.hists = append(s.hists, hdrhistogram.New(histMin, histMax, 3))
	}
	return s
}

// runner is one run in progress.
type runner struct {
	cfg     Config
	mix     *Mix
	clients []*client.Client
	shards  []*shard

	measureAt time.Time // the end of the warmup
	endAt     time.Time // zero: bounded by Requests only

	claimed  atomic.Int64 // measured requests started
	done     atomic.Uint64
	ok       atomic.Uint64
	errs     atomic.Uint64
	missed   atomic.Uint64
	finished chan struct{}
}

func (cfg *Config) defaults() error {
	if cfg.Clients == 0 {
		cfg.Clients = DefaultClients
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.MaxOutstanding == 0 {
		cfg.MaxOutstanding = DefaultMaxOutstanding
	}
	if cfg.Duration == 0 && cfg.Requests == 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 1
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = DefaultProgressEvery
	}
	if cfg.Name == "" {
		cfg.Name = "bench"
	}
	if cfg.Mix == nil {
		cfg.Mix = MustParseMix(DefaultMix)
	}
	switch {
	case cfg.Clients < 0:
		return fmt.Errorf("%w: clients %d must be positive", ErrConfig, cfg.Clients)
	case cfg.Concurrency < 0:
		return fmt.Errorf("%w: concurrency %d must be positive", ErrConfig, cfg.Concurrency)
	case cfg.Rate < 0:
		return fmt.Errorf("%w: rate %v must be positive", ErrConfig, cfg.Rate)
	case cfg.MaxOutstanding < 0:
		return fmt.Errorf("%w: max outstanding %d must be positive", ErrConfig, cfg.MaxOutstanding)
	case cfg.Duration < 0 || cfg.Requests < 0 || cfg.Warmup < 0:
		return fmt.Errorf("%w: duration, requests and warmup must not be negative", ErrConfig)
	case cfg.Timeout < 0 || cfg.MaxAttempts < 0:
		return fmt.Errorf("%w: timeout and attempts must not be negative", ErrConfig)
	}
	return nil
}

// Run connects cfg.Clients clients, sends the load, and reports. When ctx
// ends early, Run stops sending, abandons the requests outstanding and
// returns what it measured with ctx's error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, mix: cfg.Mix, finished: make(chan struct{})}
	defer r.close()
	for i := range cfg.Clients {
		c, err := client.Connect(client.Config{
			URL: cfg.URL, Options: cfg.Options, Prefix: cfg.Prefix, Subject: cfg.Subject,
			Name: cfg.Name + "-" + strconv.Itoa(i+1), Timeout: cfg.Timeout,
			MaxAttempts: cfg.MaxAttempts,
		})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		r.clients = append(r.clients, c)
		r.shards = append(r.shards, newShard(cfg.Mix.Len()))
	}

	start := time.Now()
	r.measureAt = start.Add(cfg.Warmup)
	if cfg.Duration > 0 {
		r.endAt = r.measureAt.Add(cfg.Duration)
	}
	if cfg.measured != nil {
		t := time.AfterFunc(cfg.Warmup, func() { cfg.measured(false) })
		defer func() {
			if t.Stop() { // the run ended during the warmup
				cfg.measured(false)
			}
			cfg.measured(true)
		}()
	}
	var progress sync.WaitGroup
	if cfg.Progress != nil {
		progress.Add(1)
		go func() { defer progress.Done(); r.progressLoop() }()
	}
	if cfg.Rate > 0 {
		r.openLoop(ctx)
	} else {
		r.closedLoop(ctx)
	}
	elapsed := time.Since(r.measureAt)
	close(r.finished)
	progress.Wait()
	rep := r.report(elapsed)
	if cfg.Progress != nil {
		cfg.Progress(r.snapshot(true, 0))
	}
	return rep, ctx.Err()
}

func (r *runner) close() {
	for _, c := range r.clients {
		c.Close()
	}
}

// take decides whether a request may start at now, and whether it is
// measured.
func (r *runner) take(now time.Time) (ok, measured bool) {
	if !r.endAt.IsZero() && !now.Before(r.endAt) {
		return false, false
	}
	if now.Before(r.measureAt) {
		return true, false
	}
	if r.cfg.Requests > 0 && r.claimed.Add(1) > int64(r.cfg.Requests) {
		return false, false
	}
	return true, true
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }

func (r *runner) closedLoop(ctx context.Context) {
	var wg sync.WaitGroup
	for g := range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, sh, rng := r.clients[g%len(r.clients)], r.shards[g%len(r.shards)], newRand()
			for ctx.Err() == nil {
				t0 := time.Now()
				ok, measured := r.take(t0)
				if !ok {
					return
				}
				entry, payload := r.mix.Next(rng)
				res, err := cl.DoBytes(ctx, payload)
				if ctx.Err() != nil {
					return // cut short: neither a success nor an error
				}
				if measured {
					r.record(sh, entry, time.Since(t0), res, err)
				}
			}
		}()
	}
	wg.Wait()
}

func (r *runner) openLoop(ctx context.Context) {
	var wg sync.WaitGroup
	var outstanding atomic.Int64
	rng := newRand()
	start := time.Now()
	interval := float64(time.Second) / r.cfg.Rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
			if ctx.Err() != nil {
				break
			}
		}
		ok, measured := r.take(due)
		if !ok {
			break
		}
		if outstanding.Load() >= int64(r.cfg.MaxOutstanding) {
			if measured {
				r.missed.Add(1)
			}
			continue
		}
		entry, payload := r.mix.Next(rng)
		k := i % len(r.clients)
		outstanding.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer outstanding.Add(-1)
			res, err := r.clients[k].DoBytes(ctx, payload)
			if ctx.Err() != nil || !measured {
				return
			}
			r.record(r.shards[k], entry, time.Since(due), res, err)
		}()
	}
	wg.Wait()
}

func (r *runner) record(sh *shard, entry int, lat time.Duration, res *client.Result, err error) {
	r.done.Add(1)
	if err != nil {
		r.errs.Add(1)
		code := codeOther
		var we *wire.Error
		if errors.As(err, &we) {
			code = strconv.Itoa(we.Code)
		}
		sh.mu.Lock()
		sh.errs[code]++
		if _, ok := sh.samples[code]; !ok {
			sh.samples[code] = err.Error()
		}
		sh.mu.Unlock()
		return
	}
	r.ok.Add(1)
	us := max(lat.Microseconds(), histMin)
	sh.mu.Lock()
	_ = sh.hists[entry].RecordValue(min(us, histMax)) // in range: cannot fail
	sh.workers[res.Worker]++
	sh.mu.Unlock()
}

func (r *runner) report(elapsed time.Duration) *Report {
	cfg := r.cfg
	rep := &Report{
		Subject: cfg.Subject, Clients: cfg.Clients, Mix: cfg.Mix.String(),
		Elapsed: elapsed.Seconds(), OK: r.ok.Load(), Errors: r.errs.Load(), Missed: r.missed.Load(),
		Workers: map[string]uint64{},
	}
	if rep.Subject == "" {
		rep.Subject = wire.Subjects{Prefix: cfg.Prefix}.Request()
	}
	if cfg.Rate > 0 {
		rep.Mode, rep.Rate, rep.MaxOutstanding = "open", cfg.Rate, cfg.MaxOutstanding
	} else {
		rep.Mode, rep.Concurrency = "closed", cfg.Concurrency
	}
	rep.Sent = rep.OK + rep.Errors
	if elapsed > 0 {
		rep.Throughput = float64(rep.OK) / elapsed.Seconds()
	}
	for _, c := range r.clients {
		rep.Retries += c.Stats().Retries
	}
	all := hdrhistogram.New(histMin, histMax, 3)
	for i := range cfg.Mix.Len() {
		h := hdrhistogram.New(histMin, histMax, 3)
		for _, sh := range r.shards {
			h.Merge(sh.hists[i])
		}
		all.Merge(h)
		if cfg.Mix.Len() > 1 {
			rep.Ops = append(rep.Ops, OpReport{Template: cfg.Mix.Template(i), OK: uint64(h.TotalCount()), Latency: latencyOf(h)})
		}
	}
	rep.hist = all
	rep.Latency = latencyOf(all)
	for _, sh := range r.shards {
		for k, n := range sh.workers {
			rep.Workers[k] += n
		}
		for k, n := range sh.errs {
			if rep.ErrorsByCode == nil {
				rep.ErrorsByCode, rep.ErrorSamples = map[string]uint64{}, map[string]string{}
			}
			rep.ErrorsByCode[k] += n
			if _, ok := rep.ErrorSamples[k]; !ok {
				rep.ErrorSamples[k] = sh.samples[k]
			}
		}
	}
	return rep
}

func (r *runner) snapshot(final bool, rate float64) Progress {
	p := Progress{
		Elapsed: time.Since(r.measureAt), Duration: r.cfg.Duration,
		Done: r.done.Load(), Requests: uint64(r.cfg.Requests),
		Errors: r.errs.Load(), Missed: r.missed.Load(), Rate: rate, Final: final,
	}
	p.Warmup = p.Elapsed < 0
	return p
}

func (r *runner) progressLoop() {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	last, lastAt := uint64(0), time.Now()
	for {
		select {
		case <-r.finished:
			return
		case now := <-t.C:
			done := r.done.Load()
			rate := float64(done-last) / now.Sub(lastAt).Seconds()
			last, lastAt = done, now
			r.cfg.Progress(r.snapshot(false, rate))
		}
	}
}
