package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Scenarios of a degraded fleet: what Compare does to its workers, the
// same on every path, so that a dispatcher's strategies and the workers'
// queue group meet the same trouble in one run.
const (
	ScenarioHealthy = "healthy" // equal workers: the price of seeing load
	ScenarioSlow    = "slow"    // the last of 3 workers 100ms slower
	ScenarioHung    = "hung"    // the last worker stopped (SIGSTOP) for a third of each run, from a third in
	ScenarioFailing = "failing" // the last worker answers 500 to everything, at once
	ScenarioUnequal = "unequal" // workers at delays of 10, 20 and 40ms
	ScenarioRejoin  = "rejoin"  // the last worker restarted a third into each run
)

// Scenarios lists the scenarios, in the order they are best read.
var Scenarios = []string{ScenarioHealthy, ScenarioSlow, ScenarioHung, ScenarioFailing, ScenarioUnequal, ScenarioRejoin}

// ApplyScenario sets what scenario name does to cc's workers, in the
// fields cc leaves at zero: 3 workers, their delays and fail rates, and
// the stop or restart of the last one during each run.
func (cc *CompareConfig) ApplyScenario(name string) error {
	if !slices.Contains(Scenarios, name) {
		return fmt.Errorf("%w: unknown scenario %q (want one of %s)", ErrConfig, name, strings.Join(Scenarios, ", "))
	}
	cc.Scenario = name
	if cc.Workers == 0 && len(cc.WorkerDelays) == 0 && len(cc.WorkerFailRates) == 0 {
		cc.Workers = 3
	}
	third := cc.Load.Duration / 3
	if third <= 0 {
		third = DefaultDuration / 3
	}
	switch name {
	case ScenarioSlow:
		if len(cc.WorkerDelays) == 0 {
			cc.WorkerDelays = []time.Duration{0, 0, 100 * time.Millisecond}
		}
	case ScenarioHung:
		if cc.HangFor == 0 {
			cc.HangAfter, cc.HangFor = third, third
		}
	case ScenarioFailing:
		if len(cc.WorkerFailRates) == 0 {
			cc.WorkerFailRates = []float64{0, 0, 1}
		}
	case ScenarioUnequal:
		if len(cc.WorkerDelays) == 0 {
			cc.WorkerDelays = []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}
		}
	case ScenarioRejoin:
		if cc.RestartAfter == 0 {
			cc.RestartAfter = third
		}
	}
	return nil
}

// disturbs tells whether cc stops or restarts a worker during each run.
func (cc *CompareConfig) disturbs() bool { return cc.HangFor > 0 || cc.RestartAfter > 0 }

// disturb does to the last worker what cc says, measured from the start
// of a run's measurement (after warmup), on its own goroutine; the
// function it returns ends the disturbance (a stopped worker goes on at
// once) and waits for it.
func (c *cluster) disturb(ctx context.Context, warmup time.Duration) func() error {
	if !c.cc.disturbs() {
		return func() error { return nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	i := len(c.workers) - 1
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		done <- func() error {
			if c.cc.HangFor > 0 && sleep(warmup+c.cc.HangAfter) {
				w := c.worker(i)
				if err := w.Signal(syscall.SIGSTOP); err != nil {
					return fmt.Errorf("bench: stop %s: %w", w.Name(), err)
				}
				c.event(fmt.Sprintf("stopped %s (SIGSTOP) for %v", w.Name(), c.cc.HangFor))
				sleep(c.cc.HangFor)
				if err := w.Signal(syscall.SIGCONT); err != nil {
					return fmt.Errorf("bench: continue %s: %w", w.Name(), err)
				}
				c.event("continued " + w.Name())
			}
			if c.cc.RestartAfter > 0 && sleep(warmup+c.cc.RestartAfter) {
				return c.restartWorker(i)
			}
			return nil
		}()
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// restartWorker stops worker i (SIGTERM: it drains) and starts it again
// with the same id and flags.
func (c *cluster) restartWorker(i int) error {
	old := c.worker(i)
	c.stop(old)
	w, err := c.spawn(old.Name(), c.workerArgs[i]...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.workers[i] = w
	c.mu.Unlock()
	c.event("restarted " + old.Name())
	return nil
}

// forwards is what dispatcher id says it forwarded to each worker so far,
// or nil when it does not answer.
func (c *cluster) forwards(ctx context.Context, id string) map[string]uint64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sts, err := c.ctl.Status(ctx, 50*time.Millisecond)
	if err != nil {
		return nil
	}
	for _, st := range sts {
		if st.Dispatcher == id {
			out := make(map[string]uint64, len(st.Workers))
			for _, w := range st.Workers {
				out[w.ID] = w.Forwarded
			}
			return out
		}
	}
	return nil
}

// forwardsDuring is after − before, worker by worker.
func forwardsDuring(before, after map[string]uint64) map[string]uint64 {
	if after == nil {
		return nil
	}
	out := make(map[string]uint64, len(after))
	for id, n := range after {
		out[id] = n - min(before[id], n)
	}
	return out
}

// disturbance says in words what cc does to the workers, "" for nothing.
func (c *CompareReport) disturbance() string {
	var parts []string
	if slices.ContainsFunc(c.WorkerFailRates, func(r float64) bool { return r > 0 }) {
		var s []string
		for _, r := range c.WorkerFailRates {
			s = append(s, fmt.Sprintf("%g", r))
		}
		parts = append(parts, "fail rates "+strings.Join(s, ", "))
	}
	if c.HangForS > 0 {
		parts = append(parts, fmt.Sprintf("the last worker stopped (SIGSTOP) %gs into each run for %gs", c.HangAfterS, c.HangForS))
	}
	if c.RestartAfterS > 0 {
		parts = append(parts, fmt.Sprintf("the last worker restarted (SIGTERM, then started again) %gs into each run", c.RestartAfterS))
	}
	return strings.Join(parts, "; ")
}

// lastWorker is the id of the worker a scenario disturbs.
func (c *CompareReport) lastWorker() string { return fmt.Sprintf("bw-%d", c.Workers) }

// writeScenario writes what a degraded fleet needs beside the runs'
// table: the dispatchers' forwards per worker, and after a restart the
// restarted worker's share of the replies second by second.
func (c *CompareReport) writeScenario(b *strings.Builder, head string, level func(Level) string) {
	last := c.lastWorker()
	fwd := false
	for _, l := range c.Levels {
		for _, r := range l.Runs {
			fwd = fwd || r.Forwards != nil
		}
	}
	if fwd {
		fmt.Fprintf(b, "\nThe dispatchers' forwards per worker during each run, retries included, and %s's share of them:\n\n", last)
		fmt.Fprintf(b, "| %s | round | path | forwards per worker | %s's share |\n", head, last)
		b.WriteString("|---:|---:|---|---|---:|\n")
		for _, l := range c.Levels {
			for _, r := range l.Runs {
				if r.Forwards == nil {
					continue
				}
				fmt.Fprintf(b, "| %s | %d | %s | %s | %s |\n", level(l), r.Round, r.Target, counts(r.Forwards), pct(r.Forwards[last], total(r.Forwards)))
			}
		}
	}
	if c.RestartAfterS <= 0 {
		return
	}
	fmt.Fprintf(b, "\n%s's share of the replies, second by second of each run (restarted %gs in; a fair share is %s):\n\n",
		last, c.RestartAfterS, pct(1, uint64(c.Workers)))
	for _, l := range c.Levels {
		for _, r := range l.Runs {
			bySec := r.Report.WorkersBySecond
			n := 0
			for _, ss := range bySec {
				n = max(n, len(ss))
			}
			var cells []string
			for s := range n {
				var all uint64
				for _, ss := range bySec {
					if s < len(ss) {
						all += ss[s]
					}
				}
				var mine uint64
				if ss := bySec[last]; s < len(ss) {
					mine = ss[s]
				}
				cells = append(cells, pct(mine, all))
			}
			fmt.Fprintf(b, "- %s, round %d, %s: %s\n", level(l), r.Round, r.Target, strings.Join(cells, " "))
		}
	}
}

func total(m map[string]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}

// pct is a/b in percent, "-" when b is 0.
func pct(a, b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}
