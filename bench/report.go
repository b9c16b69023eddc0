package bench

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

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
	// WorkersBySecond is the successful replies per worker, second by
	// second of the measured run (Compare with a restart).
	WorkersBySecond map[string][]uint64 `json:"workers_by_second,omitempty"`
	Ops             []OpReport          `json:"ops,omitempty"` // per mix entry, when there are several

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

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	if r.Target != "" {
		fmt.Fprintf(&b, "%s\n", r.Target)
	}
	if r.Mode == "open" {
		fmt.Fprintf(&b, "open loop: %.0f req/s due, at most %d outstanding", r.Rate, r.MaxOutstanding)
	} else {
		fmt.Fprintf(&b, "closed loop: %d outstanding", r.Concurrency)
	}
	fmt.Fprintf(&b, ", %d clients, mix %s, to %s\n", r.Clients, r.Mix, r.Subject)
	fmt.Fprintf(&b, "requests:   %d ok, %d errors", r.OK, r.Errors)
	if r.Missed > 0 {
		fmt.Fprintf(&b, ", %d missed (due while %d were outstanding)", r.Missed, r.MaxOutstanding)
	}
	if r.Retries > 0 {
		fmt.Fprintf(&b, ", %d retries", r.Retries)
	}
	fmt.Fprintf(&b, " in %.2fs\n", r.Elapsed)
	fmt.Fprintf(&b, "throughput: %.1f req/s\n", r.Throughput)
	fmt.Fprintf(&b, "latency:    %s\n", r.Latency.text())
	for _, op := range r.Ops {
		fmt.Fprintf(&b, "  %-14s %d ok, %s\n", op.Template, op.OK, op.Latency.text())
	}
	fmt.Fprintf(&b, "per worker: %s\n", counts(r.Workers))
	if len(r.ErrorsByCode) > 0 {
		b.WriteString("errors:\n")
		for _, k := range sortedKeys(r.ErrorsByCode) {
			fmt.Fprintf(&b, "  %s × %d, e.g. %s\n", k, r.ErrorsByCode[k], r.ErrorSamples[k])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (l Latency) text() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms",
		fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.P999), fmtMS(l.Max))
}

// fmtMS prints milliseconds with three significant digits or so.
func fmtMS(ms float64) string {
	switch {
	case ms >= 100:
		return strconv.FormatFloat(ms, 'f', 0, 64)
	case ms >= 10:
		return strconv.FormatFloat(ms, 'f', 1, 64)
	case ms >= 1:
		return strconv.FormatFloat(ms, 'f', 2, 64)
	}
	return strconv.FormatFloat(ms, 'f', 3, 64)
}

func counts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		name := k
		if name == "" {
			name = "(unnamed)"
		}
		parts = append(parts, fmt.Sprintf("%s %d", name, m[k]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// WriteText writes the comparison as Markdown tables, readable in a
// terminal and ready for BENCHMARKS.md.
func (c *CompareReport) WriteText(w io.Writer) error {
	var b strings.Builder
	delays := ""
	if slices.ContainsFunc(c.WorkerDelays, func(d string) bool { return d != "0s" }) {
		delays = " (delays " + strings.Join(c.WorkerDelays, ", ") + ")"
	}
	load := fmt.Sprintf("%s loop", c.Mode)
	if c.DurationS > 0 {
		load += fmt.Sprintf(", %gs per run", c.DurationS)
	}
	if c.Requests > 0 {
		load += fmt.Sprintf(", %d requests per run", c.Requests)
	}
	if c.WarmupS > 0 {
		load += fmt.Sprintf(" after %gs of warmup", c.WarmupS)
	}
	fmt.Fprintf(&b, "%d workers%s; dispatcher strategies: %s, request log on; %s; %d clients; mix `%s`; %d rounds interleaved; client MaxAttempts %d on both paths.\n\n",
		c.Workers, delays, strings.Join(c.Strategies, ", "), load, c.Clients, c.Mix, c.Rounds, c.MaxAttempts)
	if c.Scenario != "" || c.disturbance() != "" {
		fmt.Fprintf(&b, "Scenario %s", c.Scenario)
		if d := c.disturbance(); d != "" {
			fmt.Fprintf(&b, ": %s", d)
		}
		b.WriteString(".\n\n")
	}
	if c.Auth {
		b.WriteString("With authentication: broker --auth, each role with its own credential and permissions; " +
			"the load through the dispatcher as a client, the queue group's as the admin (no permissions to check).\n\n")
	}
	if c.InBroker {
		b.WriteString("The dispatcher in the broker runs inside the broker's process (broker --dispatcher), on an in-process connection; " +
			"its CPU counts as the broker's, and its RSS is the broker process's.\n\n")
	}

	level := func(l Level) string {
		if l.Rate > 0 {
			return fmt.Sprintf("%.0f req/s", l.Rate)
		}
		return strconv.Itoa(l.Concurrency)
	}
	head := "outstanding"
	if c.Mode == "open" {
		head = "rate"
	}

	b.WriteString("Medians over the rounds; (×) is the median of the per-round dispatcher/direct ratios.\n\n")
	fmt.Fprintf(&b, "| %s | path | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | dispatcher RSS MiB |\n", head)
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range c.Levels {
		for _, m := range l.Medians {
			var ra *RoundRatio
			for i := range l.Ratios {
				if l.Ratios[i].Target == m.Target {
					ra = &l.Ratios[i].Median
				}
			}
			with := func(v, r float64, f func(float64) string) string {
				if ra == nil {
					return f(v)
				}
				return fmt.Sprintf("%s (%.2f×)", f(v), r)
			}
			var tp, p50, p99 float64
			if ra != nil {
				tp, p50, p99 = ra.Throughput, ra.P50, ra.P99
			}
			errs := strconv.FormatUint(m.Errors, 10)
			if m.Missed > 0 {
				errs += fmt.Sprintf(" (+%d missed)", m.Missed)
			}
			mem := ""
			for _, x := range l.Memory {
				if x.Target == m.Target {
					mem = fmt.Sprintf("%.1f (peak %.1f)", float64(x.RSSKiB)/1024, float64(x.PeakKiB)/1024)
					if x.Err != "" {
						mem = "n/a"
					}
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				level(l), m.Target, with(m.Throughput, tp, fmtRate), with(m.Latency.P50, p50, fmtMS),
				fmtMS(m.Latency.P90), with(m.Latency.P99, p99, fmtMS), fmtMS(m.Latency.P999),
				fmtMS(m.Latency.Max), errs, mem)
		}
	}

	if len(c.Levels) > 0 && len(c.Levels[0].Medians) > 0 && c.Levels[0].Medians[0].CPU != nil {
		b.WriteString("\nCPU time per request (µs), by process, medians over the rounds; cores busy is the total CPU time over the wall time:\n\n")
		fmt.Fprintf(&b, "| %s | path | bench (load) | broker | dispatcher | workers | total | cores busy |\n", head)
		b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range c.Levels {
			for _, m := range l.Medians {
				if m.CPU == nil {
					continue
				}
				fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f |\n", level(l), m.Target,
					m.CPU["bench"], m.CPU["broker"], m.CPU["dispatcher"], m.CPU["workers"], m.CPU["total"], m.Cores)
			}
		}
	}

	if len(c.Levels) > 0 && len(c.Levels[0].Medians) > 0 && len(c.Levels[0].Medians[0].Ops) > 0 {
		b.WriteString("\nPer op, medians over the rounds:\n\n")
		fmt.Fprintf(&b, "| %s | path | op | ok | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n", head)
		b.WriteString("|---:|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, l := range c.Levels {
			for _, m := range l.Medians {
				for _, op := range m.Ops {
					fmt.Fprintf(&b, "| %s | %s | `%s` | %d | %s | %s | %s | %s | %s |\n", level(l), m.Target, op.Template, op.OK,
						fmtMS(op.Latency.P50), fmtMS(op.Latency.P90), fmtMS(op.Latency.P99), fmtMS(op.Latency.P999), fmtMS(op.Latency.Max))
				}
			}
		}
	}

	b.WriteString("\nEvery run:\n\n")
	fmt.Fprintf(&b, "| %s | round | path | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | per worker |\n", head)
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	samples := map[string]string{}
	for _, l := range c.Levels {
		for i, r := range l.Runs {
			rep := r.Report
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %d | %s |\n", level(l), r.Round, r.Target,
				fmtRate(rep.Throughput), fmtMS(rep.Latency.P50), fmtMS(rep.Latency.P99), fmtMS(rep.Latency.P999),
				fmtMS(rep.Latency.Max), rep.Errors, counts(rep.Workers))
			for k, v := range rep.ErrorSamples {
				samples[k] = v
			}
			if i+1 < len(l.Runs) && l.Runs[i+1].Round == r.Round {
				continue
			}
			for _, ra := range l.Ratios {
				for _, x := range ra.Rounds {
					if x.Round == r.Round {
						fmt.Fprintf(&b, "| %s | %d | %s / direct | %.2f× | %.2f× | %.2f× | | | | |\n",
							level(l), x.Round, ra.Target, x.Throughput, x.P50, x.P99)
					}
				}
			}
		}
	}
	c.writeScenario(&b, head, level)
	if len(samples) > 0 {
		b.WriteString("\nErrors seen:\n\n")
		for _, k := range sortedKeys(samples) {
			fmt.Fprintf(&b, "- %s: %s\n", k, samples[k])
		}
	}
	if c.Dir != "" {
		fmt.Fprintf(&b, "\nChildren's output and the dispatcher's log: %s\n", c.Dir)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtRate(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
