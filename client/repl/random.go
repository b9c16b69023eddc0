package repl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/bilancia/bilancia/calcworker/calc"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/wire"
)

// random sends n random commands, at most s.conc at a time, and prints a
// summary once all are answered. It stops sending early if ctx ends or the
// session is leaving; what was sent still finishes.
func (s *session) random(ctx context.Context, n int, quiet bool) {
	// Each run gets its own stream, so runs in the background don't share
	// a *rand.Rand (not safe for concurrent use) and Seed stays repeatable.
	run := s.runs.Add(1)
	rng := rand.New(rand.NewPCG(s.seed, run))
	st := newRandomStats()
	sem := make(chan struct{}, s.conc)
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
	stopProgress := s.showProgress(run, n, st, start)
send:
	for ; sent < n; sent++ {
		select {
		case <-ctx.Done():
			break send
		case <-s.stop:
			break send
		case sem <- struct{}{}:
		}
		select { // a slot and a stop can be ready together: stop wins
		case <-s.stop:
			<-sem
			break send
		default:
		}
		cmd := calc.Random(rng)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, lat, err := s.do(ctx, cmd)
			st.add(r, lat, err)
			if !quiet {
				s.out.print(s.pal.reply(cmd, r, lat, err))
			}
		}()
	}
	wg.Wait()
	stopProgress()
	s.out.print(st.summary(s.pal, n, sent, time.Since(start)))
}

// progressEvery is how often the progress line is redrawn; a run shorter
// than that shows none.
const progressEvery = 250 * time.Millisecond

// showProgress redraws run's progress line until the returned func is
// called, which removes it. Without a progress line it does nothing.
func (s *session) showProgress(run uint64, n int, st *randomStats, start time.Time) (stop func()) {
	if s.progress.show == nil {
		return func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-quit:
				s.progress.set(run, "")
				return
			case <-t.C:
				s.progress.set(run, st.progressLine(n, time.Since(start)))
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// progress is the one line showing every random run going.
type progress struct {
	show func(line string) // nil = no progress line; "" removes it

	mu   sync.Mutex
	runs map[uint64]string // line of each run going, by run number
}

// set sets run's part of the line, "" removing it, and shows the line.
func (p *progress) set(run uint64, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.runs == nil {
		p.runs = make(map[uint64]string)
	}
	if line == "" {
		delete(p.runs, run)
	} else {
		p.runs[run] = line
	}
	keys := make([]uint64, 0, len(p.runs))
	for k := range p.runs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = p.runs[k]
	}
	p.show(strings.Join(parts, " | "))
}

// randomStats aggregates the replies of one random run.
type randomStats struct {
	mu        sync.Mutex
	ok, fail  int
	hist      *hdrhistogram.Histogram // µs, replies only (ok or error)
	perWorker map[string]int          // replies per worker, ok or error
	errs      map[string]int          // failures by code
}

func newRandomStats() *randomStats {
	return &randomStats{
		// 1 µs to 1 h at 3 significant digits: any deadline fits.
		hist:      hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3),
		perWorker: make(map[string]int),
		errs:      make(map[string]int),
	}
}

func (st *randomStats) add(r *client.Result, lat time.Duration, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err != nil {
		st.fail++
		st.errs[errorKey(err)]++
	} else {
		st.ok++
	}
	if r == nil {
		return // no reply: no worker, and its wait is not a latency
	}
	if r.Worker != "" {
		st.perWorker[r.Worker]++
	}
	_ = st.hist.RecordValue(max(int64(lat/time.Microsecond), 1)) // above 1 h it is not recorded
}

// errorKey names a failure in the summary: its code, or what went wrong.
func errorKey(err error) string {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return strconv.Itoa(we.Code)
	case errors.Is(err, client.ErrClosed):
		return "closed"
	default:
		return "other"
	}
}

// progressLine is, e.g., "random: 41200 of 100000, 41190 ok, 10 failed, 20580 req/s".
func (st *randomStats) progressLine(n int, elapsed time.Duration) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(st.ok+st.fail) / s
	}
	return fmt.Sprintf("random: %d of %d, %d ok, %d failed, %.0f req/s", st.ok+st.fail, n, st.ok, st.fail, rate)
}

// summary is, e.g.:
//
//	1000 ok, 0 failed in 0.21 s (4762 req/s), p50 0.3 ms, p99 1.9 ms
//	per worker: w-3f2a 334, w-81c0 333, w-d04e 333
//	errors: 503 x3, 504 x1
func (st *randomStats) summary(p palette, n, sent int, elapsed time.Duration) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var b strings.Builder
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(st.ok+st.fail) / s
	}
	p50, p99 := "-", "-"
	if st.hist.TotalCount() > 0 {
		p50 = fmtLatency(time.Duration(st.hist.ValueAtQuantile(50)) * time.Microsecond)
		p99 = fmtLatency(time.Duration(st.hist.ValueAtQuantile(99)) * time.Microsecond)
	}
	ok, failed := strconv.Itoa(st.ok)+" ok", strconv.Itoa(st.fail)+" failed"
	if st.ok > 0 {
		ok = p.ok(ok)
	}
	if st.fail > 0 {
		failed = p.err(failed)
	}
	fmt.Fprintf(&b, "%s, %s in %.2f s (%.0f req/s), p50 %s, p99 %s\n",
		ok, failed, elapsed.Seconds(), rate, p50, p99)
	b.WriteString("per worker: ")
	b.WriteString(counts(st.perWorker, func(k string, v int) string { return safe(k) + " " + strconv.Itoa(v) }))
	b.WriteString("\n")
	if len(st.errs) > 0 {
		b.WriteString("errors: ")
		b.WriteString(counts(st.errs, func(k string, v int) string { return k + " x" + strconv.Itoa(v) }))
		b.WriteString("\n")
	}
	if sent < n {
		fmt.Fprintf(&b, "stopped early: sent %d of %d\n", sent, n)
	}
	return b.String()
}

// counts lists m sorted by key, or "none".
func counts(m map[string]int, f func(string, int) string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = f(k, m[k])
	}
	return strings.Join(parts, ", ")
}
