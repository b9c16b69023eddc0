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

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

// Histogram range: 1 µs to 2 minutes, 3 significant digits.
const (
	histMin = 1
	histMax = int64(2 * time.Minute / time.Microsecond)
)

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
	seconds map[string][]uint64 // with Config.bySecond: replies per worker per second measured
}

func newShard(entries int) *shard {
	s := &shard{errs: map[string]uint64{}, samples: map[string]string{}, workers: map[string]uint64{},
		seconds: map[string][]uint64{}}
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
	if r.cfg.bySecond {
		sec := int(max(time.Since(r.measureAt), 0) / time.Second)
		ss := sh.seconds[res.Worker]
		for len(ss) <= sec {
			ss = append(ss, 0)
		}
		ss[sec]++
		sh.seconds[res.Worker] = ss
	}
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
		for k, ss := range sh.seconds {
			if rep.WorkersBySecond == nil {
				rep.WorkersBySecond = map[string][]uint64{}
			}
			all := rep.WorkersBySecond[k]
			for len(all) < len(ss) {
				all = append(all, 0)
			}
			for i, n := range ss {
				all[i] += n
			}
			rep.WorkersBySecond[k] = all
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
