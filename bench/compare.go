package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// CompareConfig describes a comparison: a broker, workers and a dispatcher
// started as separate processes of the bilancia binary, and the same load
// sent through the dispatcher and straight to the workers' queue group.
// Zero values mean the documented defaults.
type CompareConfig struct {
	// Exe is the bilancia binary to start the roles with; "" = this
	// process's own executable.
	Exe string
	// Load is the load of every run. URL, Prefix, Subject, Progress and
	// (per level) Concurrency are set by Compare.
	Load Config
	// Levels are the concurrency levels to run, each in turn; empty = the
	// load's Concurrency. An open-loop load (Rate set) has one level.
	Levels []int
	// Rounds is how many times each target runs per level, interleaved.
	// 0 = 3.
	Rounds int
	// Strategies are the dispatcher's balancing strategies to compare;
	// empty = round-robin. An entry may add dispatcher flags after the
	// strategy ("round-robin --procs 2"), to compare settings. With
	// several, the dispatcher is restarted when the next run needs another
	// one.
	Strategies []string
	// Workers is how many worker processes to start; 0 = the number of
	// WorkerDelays, or 3 without them.
	Workers int
	// WorkerDelays are the workers' --delay, in order; workers beyond the
	// list have none.
	WorkerDelays []time.Duration
	// WorkerConcurrency is each worker's --concurrency; 0 = its default.
	WorkerConcurrency int
	// WorkerFailRates are the workers' --fail-rate, in order: the share
	// of requests each answers with a 500 at once; workers beyond the
	// list fail none.
	WorkerFailRates []float64
	// HangFor, if set, stops the last worker (SIGSTOP) HangAfter into
	// each measured run, for HangFor, then lets it go on (SIGCONT).
	HangAfter, HangFor time.Duration
	// RestartAfter, if set, restarts the last worker (SIGTERM, then
	// started again with the same id) this long into each measured run.
	RestartAfter time.Duration
	// Scenario names what ApplyScenario set, for the report.
	Scenario string
	// InBroker adds a target: a dispatcher run inside the broker's process
	// (broker --dispatcher), on an in-process connection, with the first
	// strategy, taking requests on <prefix>.inbroker.
	InBroker bool
	// Auth runs the broker with --auth (in Dir's auth/) and each role with
	// its credential: the load through a dispatcher as the default client,
	// the queue group's as the admin, the only one that may publish
	// <prefix>.direct. Not with InBroker.
	Auth bool
	// Dir receives the children's output and the dispatcher's log; "" = a
	// temporary directory, removed at the end unless Keep is set.
	Dir  string
	Keep bool
	// ReadyTimeout bounds the wait for the broker and for the dispatcher
	// to see every worker. 0 = 20s.
	ReadyTimeout time.Duration

	// Progress, if set, makes the progress callback of each run.
	Progress func(label string) func(Progress)
	// Event, if set, hears what Compare is doing (children started,
	// stopped) in one line each.
	Event func(msg string)
}

// DirectTarget names the runs that bypass the dispatcher.
const DirectTarget = "direct (queue group)"

// DispatcherTarget names the runs through a dispatcher with strategy.
func DispatcherTarget(strategy string) string { return "dispatcher " + strategy }

// InBrokerTarget names the runs through the dispatcher in the broker's
// process.
func InBrokerTarget(strategy string) string { return DispatcherTarget(strategy) + " in the broker" }

// inBrokerStrategy is the first strategy without its extra flags, which
// are a dispatcher process's.
func (cc *CompareConfig) inBrokerStrategy() string { return strings.Fields(cc.Strategies[0])[0] }

// inBrokerID is the dispatcher in the broker's id.
const inBrokerID = "bd-broker"

type target struct {
	name, subject, strategy string // strategy "" = direct
	inBroker                bool   // the dispatcher in the broker's process
}

func (cc *CompareConfig) defaults() error {
	if cc.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: find own executable: %w", err)
		}
		cc.Exe = exe
	}
	if cc.Rounds == 0 {
		cc.Rounds = 3
	}
	if cc.Auth && cc.InBroker {
		return fmt.Errorf("%w: Auth does not go with InBroker, whose subject no client credential may publish", ErrConfig)
	}
	if len(cc.Strategies) == 0 {
		cc.Strategies = []string{"round-robin"}
	}
	if cc.Workers == 0 {
		cc.Workers = max(len(cc.WorkerDelays), len(cc.WorkerFailRates), 3)
	}
	if cc.ReadyTimeout <= 0 {
		cc.ReadyTimeout = 20 * time.Second
	}
	if err := cc.Load.defaults(); err != nil {
		return err
	}
	if len(cc.Levels) == 0 || cc.Load.Rate > 0 {
		if cc.Load.Rate > 0 && len(cc.Levels) > 1 {
			return fmt.Errorf("%w: an open-loop comparison has one level (the rate); drop the concurrency list", ErrConfig)
		}
		cc.Levels = []int{cc.Load.Concurrency}
	}
	switch {
	case cc.Rounds < 0:
		return fmt.Errorf("%w: rounds %d must be positive", ErrConfig, cc.Rounds)
	case cc.Workers < 0 || cc.Workers > 64:
		return fmt.Errorf("%w: workers %d must be between 1 and 64", ErrConfig, cc.Workers)
	case len(cc.WorkerDelays) > cc.Workers:
		return fmt.Errorf("%w: %d worker delays for %d workers", ErrConfig, len(cc.WorkerDelays), cc.Workers)
	case len(cc.WorkerFailRates) > cc.Workers:
		return fmt.Errorf("%w: %d worker fail rates for %d workers", ErrConfig, len(cc.WorkerFailRates), cc.Workers)
	case cc.HangAfter < 0 || cc.HangFor < 0 || cc.RestartAfter < 0:
		return fmt.Errorf("%w: hang and restart times must not be negative", ErrConfig)
	case cc.HangFor > 0 && cc.RestartAfter > 0:
		return fmt.Errorf("%w: stop a worker or restart it, not both", ErrConfig)
	}
	for _, r := range cc.WorkerFailRates {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("%w: worker fail rate %v must be between 0 and 1", ErrConfig, r)
		}
	}
	for _, l := range cc.Levels {
		if l <= 0 {
			return fmt.Errorf("%w: concurrency level %d must be positive", ErrConfig, l)
		}
	}
	for _, d := range cc.WorkerDelays {
		if d < 0 {
			return fmt.Errorf("%w: worker delay %v must not be negative", ErrConfig, d)
		}
	}
	for _, s := range cc.Strategies {
		if f := strings.Fields(s); len(f) == 0 || strings.HasPrefix(f[0], "-") {
			return fmt.Errorf("%w: bad strategy %q", ErrConfig, s)
		}
	}
	return nil
}

// Compare starts a broker, the workers (serving the direct queue group too)
// and a dispatcher with request logging on, each a separate process of
// cc.Exe; waits until the dispatcher sees every worker; then, for each
// level, runs the load through the dispatcher and straight to the workers,
// interleaved, cc.Rounds times. Every child is stopped before Compare
// returns, whatever happens; each runs in its own process group and, on
// Linux, dies with this process. When ctx ends or a run fails, Compare
// returns what it measured with the error.
func Compare(ctx context.Context, cc CompareConfig) (rep *CompareReport, err error) {
	if err := cc.defaults(); err != nil {
		return nil, err
	}
	load := cc.Load
	rep = &CompareReport{
		Workers: cc.Workers, Strategies: cc.Strategies, InBroker: cc.InBroker, Auth: cc.Auth, Rounds: cc.Rounds, Mix: load.Mix.String(),
		Clients: load.Clients, MaxAttempts: load.MaxAttempts, DurationS: load.Duration.Seconds(),
		Requests: load.Requests, WarmupS: load.Warmup.Seconds(), Mode: "closed",
		Scenario: cc.Scenario, WorkerFailRates: cc.WorkerFailRates, HangAfterS: cc.HangAfter.Seconds(),
		HangForS: cc.HangFor.Seconds(), RestartAfterS: cc.RestartAfter.Seconds(),
	}
	if cc.RestartAfter > 0 {
		load.bySecond = true // the restarted worker's share, second by second
	}
	if load.Rate > 0 {
		rep.Mode = "open"
	}
	for i := range cc.Workers {
		var d time.Duration
		if i < len(cc.WorkerDelays) {
			d = cc.WorkerDelays[i]
		}
		rep.WorkerDelays = append(rep.WorkerDelays, d.String())
	}

	c := &cluster{cc: &cc}
	defer func() {
		c.stopAll()
		if c.dir == "" {
			return
		}
		if c.tempDir && !cc.Keep && (err == nil || errors.Is(err, context.Canceled)) {
			_ = os.RemoveAll(c.dir)
			return
		}
		rep.Dir = c.dir
		if err != nil {
			c.event("children's output kept in " + c.dir)
		}
	}()
	if err := c.start(ctx); err != nil {
		return rep, err
	}

	subj := wire.Subjects{Prefix: load.Prefix}
	targets := []target{}
	for _, s := range cc.Strategies {
		targets = append(targets, target{name: DispatcherTarget(s), subject: subj.Request(), strategy: s})
	}
	if cc.InBroker {
		s := cc.inBrokerStrategy()
		targets = append(targets, target{name: InBrokerTarget(s), subject: subj.InBroker(), strategy: s, inBroker: true})
	}
	targets = append(targets, target{name: DirectTarget, subject: subj.Direct()})

	for _, level := range cc.Levels {
		lvl := Level{Concurrency: level, Rate: load.Rate}
		if load.Rate > 0 {
			lvl.Concurrency = 0
		}
		mem := map[string]Memory{}
		for round := range cc.Rounds {
			// Rotate the order, so that no target always runs first.
			order := append(slices.Clone(targets[round%len(targets):]), targets[:round%len(targets)]...)
			for _, t := range order {
				if t.strategy != "" && !t.inBroker {
					if err := c.ensureDispatcher(ctx, t.strategy); err != nil {
						return rep, err
					}
				}
				cfg := load
				cfg.URL, cfg.Subject, cfg.Concurrency = c.url, t.subject, level
				if cfg.Options, err = c.loadOptions(t); err != nil {
					return rep, err
				}
				cfg.Name = "bench-" + strings.Fields(t.name)[0]
				label := fmt.Sprintf("%s, round %d/%d", t.name, round+1, cc.Rounds)
				if load.Rate > 0 {
					label = fmt.Sprintf("%.0f req/s, %s", load.Rate, label)
				} else {
					label = fmt.Sprintf("%d outstanding, %s", level, label)
				}
				if cc.Progress != nil {
					cfg.Progress = cc.Progress(label)
				}
				var w cpuWindow
				cfg.measured = func(end bool) { w.mark(c, end) }
				dispID := c.dispID
				if t.inBroker {
					dispID = inBrokerID
				}
				var before map[string]uint64
				if t.strategy != "" {
					before = c.forwards(ctx, dispID)
				}
				undisturb := c.disturb(ctx, cfg.Warmup)
				r, err := Run(ctx, cfg)
				if derr := undisturb(); err == nil {
					err = derr
				}
				if r != nil {
					r.Target = t.name
					rr := RunResult{Round: round + 1, Target: t.name, Report: r}
					rr.CPU, rr.Cores = w.perRequest(r.OK + r.Errors)
					if t.strategy != "" {
						rr.Forwards = forwardsDuring(before, c.forwards(ctx, dispID))
					}
					lvl.Runs = append(lvl.Runs, rr)
				}
				if err == nil && cc.disturbs() && c.disp != nil {
					err = c.waitSees(ctx, c.dispID) // the next run starts with every worker up
				}
				if err != nil {
					rep.Levels = append(rep.Levels, lvl.summarize(targets, mem))
					return rep, err
				}
				if err := c.alive(); err != nil {
					rep.Levels = append(rep.Levels, lvl.summarize(targets, mem))
					return rep, err
				}
				switch {
				case t.inBroker:
					mem[t.name] = processMemory(t.name, c.broker)
				case t.strategy != "":
					mem[t.name] = processMemory(t.name, c.disp)
				}
			}
		}
		rep.Levels = append(rep.Levels, lvl.summarize(targets, mem))
	}
	return rep, nil
}
