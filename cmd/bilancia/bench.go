package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/chzyer/readline"

	"github.com/bilancia/bilancia/bench"
)

// BenchCmd generates load and reports latency and throughput; with
// --compare it also starts the system it measures.
type BenchCmd struct {
	NATSFlags
	Subject        string        `help:"Send requests here instead of <prefix>.request (<prefix>.direct: the workers' queue group, without the dispatcher)."`
	Concurrency    []int         `default:"16" help:"Requests outstanding (closed loop); a list like 1,16,64,256 runs each level in turn."`
	Duration       time.Duration `default:"10s" help:"How long to measure each run (unless --requests is given)."`
	Requests       int           `help:"End each run after this many requests instead of after --duration."`
	Rate           float64       `help:"Open loop: requests due per second, whatever the replies do (0 = closed loop)."`
	MaxOutstanding int           `default:"1000" help:"Open loop: bound on requests outstanding; a request due beyond it is not sent and counts as missed."`
	Mix            string        `default:"add:100" help:"Weighted command templates, e.g. 'add:90,sleep 5:10'; an op given without arguments gets random operands."`
	Clients        int           `default:"4" help:"NATS connections sharing the load."`
	Warmup         time.Duration `help:"Send the load this long before measuring each run."`
	Timeout        time.Duration `default:"10s" help:"Deadline of each request."`
	Retries        int           `help:"Extra sends of a request left unanswered (default 0: a slow reply is not resent)."`
	JSON           bool          `help:"Print the report as JSON instead of text."`
	JSONFile       string        `name:"json-file" help:"Also write the JSON report to this file."`
	Strict         bool          `help:"Exit 1 if any request failed, or if none succeeded."`
	CPUProfile     string        `name:"cpuprofile" placeholder:"FILE" help:"Write a CPU profile of the load generator itself to FILE (go tool pprof)."`

	Compare           bool            `help:"Start a broker, workers and a dispatcher, and compare the load through the dispatcher with the workers' queue group."`
	Rounds            int             `default:"3" help:"--compare: runs of each path per level, interleaved; the medians are reported."`
	Strategy          []string        `help:"--compare: dispatcher strategies (round-robin, peak-ewma, least-inflight), compared in turn; an entry may add dispatcher flags ('round-robin --procs 0'). Default: round-robin, or all three with --scenario."`
	Workers           int             `help:"--compare: worker processes (default 3, or one per --worker-delays entry)."`
	WorkerDelays      []time.Duration `help:"--compare: the workers' --delay, in order, e.g. 0,0,2ms, to make them unequal."`
	WorkerConcurrency int             `help:"--compare: each worker's --concurrency (default: the worker's)."`
	WorkerFailRates   []float64       `help:"--compare: the workers' --fail-rate, in order, e.g. 0,0,1: the share of requests each answers with a 500 at once."`
	HangAfter         time.Duration   `help:"--compare: stop the last worker (SIGSTOP) this long into each measured run, for --hang-for."`
	HangFor           time.Duration   `help:"--compare: how long the last worker stays stopped in each run (then SIGCONT)."`
	RestartAfter      time.Duration   `help:"--compare: restart the last worker (SIGTERM, then started again with its id) this long into each measured run."`
	Scenario          []string        `help:"--compare: degraded fleets to compare, each with its own workers: healthy, slow, hung, failing, unequal, rejoin (BENCHMARKS.md); a list runs each in turn."`
	InBroker          bool            `help:"--compare: also measure a dispatcher inside the broker's process (broker --dispatcher, the first --strategy)."`
	Auth              bool            `help:"--compare: run the broker with --auth and each role with its credential (docs/auth.md); the queue group's load as the admin."`
	Keep              string          `placeholder:"DIR" help:"--compare: keep the children's output and the dispatcher's log in DIR (default: removed unless something fails)."`
}

func (c *BenchCmd) Run(g *globals) error {
	mix, err := bench.ParseMix(c.Mix)
	if err != nil {
		return &exitError{2, err.Error()}
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	if c.Retries < 0 {
		return &exitError{2, "--retries must not be negative"}
	}
	load := bench.Config{
		URL: c.NATS, Options: opts, Prefix: c.Prefix, Subject: c.Subject,
		Clients: c.Clients, Rate: c.Rate, MaxOutstanding: c.MaxOutstanding,
		Duration: c.Duration, Requests: c.Requests, Warmup: c.Warmup,
		Mix: mix, Timeout: c.Timeout, MaxAttempts: c.Retries + 1,
	}
	if c.Requests > 0 {
		load.Duration = 0 // --requests ends the run, not the default duration
	}
	progress := &bench.ProgressPrinter{W: os.Stderr, TTY: readline.IsTerminal(int(os.Stderr.Fd()))}
	if c.CPUProfile != "" {
		stop, err := startCPUProfile(c.CPUProfile)
		if err != nil {
			return &exitError{1, err.Error()}
		}
		defer stop()
	}

	var out any
	var failed bool
	if c.Compare {
		if c.Subject != "" {
			return &exitError{2, "--subject does not go with --compare, which sends to both subjects"}
		}
		return c.compare(g, load, progress)
	}

	var reps []*bench.Report
	levels := c.Concurrency
	if c.Rate > 0 {
		levels = levels[:1]
	}
	for _, level := range levels {
		cfg := load
		cfg.Concurrency = level
		label := fmt.Sprintf("%d outstanding", level)
		if c.Rate > 0 {
			label = fmt.Sprintf("%.0f req/s", c.Rate)
		}
		cfg.Progress = progress.Func(label)
		rep, rerr := bench.Run(g.ctx, cfg)
		if rep == nil {
			return badConfig(rerr)
		}
		reps = append(reps, rep)
		failed = failed || rep.Errors > 0 || rep.OK == 0
		if rerr != nil {
			err = rerr
			break
		}
	}
	out = reps
	if len(reps) == 1 {
		out = reps[0]
	}
	if perr := c.print(out, func(w io.Writer) error {
		for i, r := range reps {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if err := r.WriteText(w); err != nil {
				return err
			}
		}
		return nil
	}); perr != nil {
		return perr
	}
	return c.result(err, failed)
}

// compare runs --compare, once or per --scenario, and prints the reports.
func (c *BenchCmd) compare(g *globals, load bench.Config, progress *bench.ProgressPrinter) error {
	strategies := c.Strategy
	if len(strategies) == 0 {
		strategies = []string{"round-robin"}
		if len(c.Scenario) > 0 {
			strategies = []string{"round-robin", "peak-ewma", "least-inflight"}
		}
	}
	scenarios := c.Scenario
	if len(scenarios) == 0 {
		scenarios = []string{""}
	}
	var reps []*bench.CompareReport
	var err error
	failed := false
	for _, sc := range scenarios {
		cc := bench.CompareConfig{
			Load: load, Levels: c.Concurrency, Rounds: c.Rounds, Strategies: strategies,
			Workers: c.Workers, WorkerDelays: c.WorkerDelays, WorkerConcurrency: c.WorkerConcurrency,
			WorkerFailRates: c.WorkerFailRates, HangAfter: c.HangAfter, HangFor: c.HangFor, RestartAfter: c.RestartAfter,
			InBroker: c.InBroker, Auth: c.Auth, Dir: c.Keep, Keep: c.Keep != "",
			Progress: progress.Func,
			Event:    func(msg string) { fmt.Fprintln(os.Stderr, "bench: "+msg) },
		}
		if c.Keep != "" && sc != "" {
			cc.Dir = filepath.Join(c.Keep, sc)
		}
		if sc != "" {
			if err := cc.ApplyScenario(sc); err != nil {
				return badConfig(err)
			}
		}
		var rep *bench.CompareReport
		rep, err = bench.Compare(g.ctx, cc)
		if rep == nil {
			return badConfig(err)
		}
		reps = append(reps, rep)
		for _, l := range rep.Levels {
			for _, r := range l.Runs {
				failed = failed || r.Report.Errors > 0 || r.Report.OK == 0
			}
		}
		if err != nil {
			break
		}
	}
	var out any = reps
	if len(reps) == 1 {
		out = reps[0]
	}
	if perr := c.print(out, func(w io.Writer) error {
		for i, r := range reps {
			if i > 0 {
				fmt.Fprintln(w)
			}
			if len(reps) > 1 {
				fmt.Fprintf(w, "### %s\n\n", r.Scenario)
			}
			if err := r.WriteText(w); err != nil {
				return err
			}
		}
		return nil
	}); perr != nil {
		return perr
	}
	return c.result(err, failed)
}

// badConfig turns an error that left no report into the exit status.
func badConfig(err error) error {
	if errors.Is(err, bench.ErrConfig) {
		return &exitError{2, err.Error()}
	}
	return &exitError{1, err.Error()}
}

func (c *BenchCmd) print(v any, text func(io.Writer) error) error {
	if c.JSONFile != "" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(c.JSONFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if c.JSON {
		return printJSON(v)
	}
	return text(os.Stdout)
}

// result is the exit status: interrupted, failed, or fine.
func (c *BenchCmd) result(err error, failed bool) error {
	switch {
	case errors.Is(err, context.Canceled):
		return &exitError{130, "interrupted; the report covers what was measured"}
	case err != nil:
		return &exitError{1, err.Error()}
	case c.Strict && failed:
		return &exitError{1, "some requests failed, or none succeeded (--strict)"}
	}
	return nil
}
