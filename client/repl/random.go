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
	rng := rand.New(rand.NewPCG(s.seed, s.runs.Add(1)))
	st := newRandomStats()
	sem := make(chan struct{}, s.conc)
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
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
				s.out.print(formatReply(cmd, r, lat, err))
			}
		}()
	}
	wg.Wait()
	s.out.print(st.summary(n, sent, time.Since(start)))
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

// summary is, e.g.:
//
//	1000 ok, 0 failed in 0.21 s (4762 req/s), p50 0.3 ms, p99 1.9 ms
//	per worker: w-3f2a 334, w-81c0 333, w-d04e 333
//	errors: 503 x3, 504 x1
func (st *randomStats) summary(n, sent int, elapsed time.Duration) string {
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
	fmt.Fprintf(&b, "%d ok, %d failed in %.2f s (%.0f req/s), p50 %s, p99 %s\n",
		st.ok, st.fail, elapsed.Seconds(), rate, p50, p99)
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
