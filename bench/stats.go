package bench

import "slices"

// CompareReport is the outcome of Compare.
type CompareReport struct {
	Workers      int      `json:"workers"`
	WorkerDelays []string `json:"worker_delays,omitempty"`
	// Scenario, if set, names the degraded fleet (scenario.go), which the
	// fields after it describe.
	Scenario        string    `json:"scenario,omitempty"`
	WorkerFailRates []float64 `json:"worker_fail_rates,omitempty"`
	HangAfterS      float64   `json:"hang_after_s,omitempty"`
	HangForS        float64   `json:"hang_for_s,omitempty"`
	RestartAfterS   float64   `json:"restart_after_s,omitempty"`
	Strategies      []string  `json:"strategies"`
	InBroker        bool      `json:"in_broker,omitempty"`
	Auth            bool      `json:"auth,omitempty"` // broker --auth, each role with its credential
	Rounds          int       `json:"rounds"`
	Mode            string    `json:"mode"`
	Mix             string    `json:"mix"`
	Clients         int       `json:"clients"`
	MaxAttempts     int       `json:"max_attempts"`
	DurationS       float64   `json:"duration_s,omitempty"`
	Requests        int       `json:"requests,omitempty"`
	WarmupS         float64   `json:"warmup_s,omitempty"`
	Levels          []Level   `json:"levels"`
	Dir             string    `json:"dir,omitempty"` // kept children's logs
}

// Level is one concurrency level of a comparison.
type Level struct {
	Concurrency int         `json:"concurrency,omitempty"`
	Rate        float64     `json:"rate,omitempty"`
	Runs        []RunResult `json:"runs"`
	// Medians has each target's median over the rounds, metric by metric.
	Medians []Median `json:"medians"`
	// Ratios has, per dispatcher target, each round's dispatcher/direct
	// ratios and their median.
	Ratios []Ratio `json:"ratios"`
	// Memory is each dispatcher's memory after its last run of the level;
	// for the dispatcher in the broker, the broker process's.
	Memory []Memory `json:"dispatcher_memory"`
}

// RunResult is one measured run.
type RunResult struct {
	Round  int     `json:"round"`
	Target string  `json:"target"`
	Report *Report `json:"report"`
	// CPU is the CPU time each role used while measuring, in µs per
	// request: bench (this process: the load generator), broker,
	// dispatcher, workers (all of them), total. Linux only.
	CPU map[string]float64 `json:"cpu_us_per_request,omitempty"`
	// Cores is the total CPU time over the wall time: how many cores the
	// whole system kept busy.
	Cores float64 `json:"cores_busy,omitempty"`
	// Forwards is what the dispatcher sent each worker during the run,
	// attempts that failed and were sent on included; none for the queue
	// group.
	Forwards map[string]uint64 `json:"forwards,omitempty"`
}

// Median is a target's medians over the rounds.
type Median struct {
	Target     string     `json:"target"`
	Throughput float64    `json:"throughput_rps"`
	Latency    Latency    `json:"latency_ms"`
	OK         uint64     `json:"ok"` // totals over the rounds
	Errors     uint64     `json:"errors"`
	Missed     uint64     `json:"missed,omitempty"`
	Ops        []OpReport `json:"ops,omitempty"`
	// CPU and Cores are the medians of the runs' (see RunResult).
	CPU   map[string]float64 `json:"cpu_us_per_request,omitempty"`
	Cores float64            `json:"cores_busy,omitempty"`
}

// Ratio compares a dispatcher target with direct: its throughput, p50 and
// p99 divided by direct's, round by round.
type Ratio struct {
	Target string       `json:"target"`
	Rounds []RoundRatio `json:"rounds"`
	Median RoundRatio   `json:"median"`
}

// RoundRatio holds dispatcher/direct ratios.
type RoundRatio struct {
	Round      int     `json:"round,omitempty"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50"`
	P99        float64 `json:"p99"`
}

// Memory is a dispatcher process's memory, from /proc/<pid>/status.
type Memory struct {
	Target  string `json:"target"`
	PID     int    `json:"pid"`
	RSSKiB  int64  `json:"rss_kib"`  // VmRSS
	PeakKiB int64  `json:"peak_kib"` // VmHWM
	Err     string `json:"error,omitempty"`
}

// summarize fills in a level's medians, its ratios to direct and its
// dispatchers' memory from its runs, target by target in targets' order.
func (l Level) summarize(targets []target, mem map[string]Memory) Level {
	byTarget := map[string][]*Report{}
	for _, r := range l.Runs {
		byTarget[r.Target] = append(byTarget[r.Target], r.Report)
	}
	l.Medians, l.Ratios, l.Memory = nil, nil, nil
	for _, t := range targets {
		reps := byTarget[t.name]
		if len(reps) == 0 {
			continue
		}
		m := medianOf(t.name, reps)
		var runs []RunResult
		for _, r := range l.Runs {
			if r.Target == t.name && r.CPU != nil {
				runs = append(runs, r)
			}
		}
		if len(runs) > 0 {
			m.CPU = map[string]float64{}
			for role := range runs[0].CPU {
				m.CPU[role] = median(runs, func(r RunResult) float64 { return r.CPU[role] })
			}
			m.Cores = median(runs, func(r RunResult) float64 { return r.Cores })
		}
		l.Medians = append(l.Medians, m)
		if m, ok := mem[t.name]; ok {
			l.Memory = append(l.Memory, m)
		}
	}
	direct := map[int]*Report{}
	for _, r := range l.Runs {
		if r.Target == DirectTarget {
			direct[r.Round] = r.Report
		}
	}
	for _, t := range targets {
		if t.strategy == "" {
			continue
		}
		ra := Ratio{Target: t.name}
		for _, r := range l.Runs {
			d := direct[r.Round]
			if r.Target != t.name || d == nil {
				continue
			}
			ra.Rounds = append(ra.Rounds, RoundRatio{
				Round:      r.Round,
				Throughput: ratio(r.Report.Throughput, d.Throughput),
				P50:        ratio(r.Report.Latency.P50, d.Latency.P50),
				P99:        ratio(r.Report.Latency.P99, d.Latency.P99),
			})
		}
		if len(ra.Rounds) == 0 {
			continue
		}
		ra.Median = RoundRatio{
			Throughput: median(ra.Rounds, func(x RoundRatio) float64 { return x.Throughput }),
			P50:        median(ra.Rounds, func(x RoundRatio) float64 { return x.P50 }),
			P99:        median(ra.Rounds, func(x RoundRatio) float64 { return x.P99 }),
		}
		l.Ratios = append(l.Ratios, ra)
	}
	return l
}

// ratio is a/b, or 0 when b is.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// median is the median of f over xs; 0 for none.
func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// medianOf is a target's medians over its rounds' reports; counts are
// totals.
func medianOf(name string, reps []*Report) Median {
	m := Median{Target: name}
	m.Throughput = median(reps, func(r *Report) float64 { return r.Throughput })
	m.Latency = medianLatency(reps, func(r *Report) Latency { return r.Latency })
	for _, r := range reps {
		m.OK += r.OK
		m.Errors += r.Errors
		m.Missed += r.Missed
	}
	for i, op := range reps[0].Ops {
		ok := uint64(0)
		for _, r := range reps {
			ok += r.Ops[i].OK
		}
		m.Ops = append(m.Ops, OpReport{Template: op.Template, OK: ok,
			Latency: medianLatency(reps, func(r *Report) Latency { return r.Ops[i].Latency })})
	}
	return m
}

// medianLatency is the median of each percentile of f over reps.
func medianLatency(reps []*Report, f func(*Report) Latency) Latency {
	return Latency{
		P50:  median(reps, func(r *Report) float64 { return f(r).P50 }),
		P90:  median(reps, func(r *Report) float64 { return f(r).P90 }),
		P99:  median(reps, func(r *Report) float64 { return f(r).P99 }),
		P999: median(reps, func(r *Report) float64 { return f(r).P999 }),
		Max:  median(reps, func(r *Report) float64 { return f(r).Max }),
		Mean: median(reps, func(r *Report) float64 { return f(r).Mean }),
	}
}
