package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/client"
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
	// InBroker adds a target: a dispatcher run inside the broker's process
	// (broker --dispatcher), on an in-process connection, with the first
	// strategy, taking requests on <prefix>.inbroker.
	InBroker bool
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

// CompareReport is the outcome of Compare.
type CompareReport struct {
	Workers      int      `json:"workers"`
	WorkerDelays []string `json:"worker_delays,omitempty"`
	Strategies   []string `json:"strategies"`
	InBroker     bool     `json:"in_broker,omitempty"`
	Rounds       int      `json:"rounds"`
	Mode         string   `json:"mode"`
	Mix          string   `json:"mix"`
	Clients      int      `json:"clients"`
	MaxAttempts  int      `json:"max_attempts"`
	DurationS    float64  `json:"duration_s,omitempty"`
	Requests     int      `json:"requests,omitempty"`
	WarmupS      float64  `json:"warmup_s,omitempty"`
	Levels       []Level  `json:"levels"`
	Dir          string   `json:"dir,omitempty"` // kept children's logs
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
	if len(cc.Strategies) == 0 {
		cc.Strategies = []string{"round-robin"}
	}
	if cc.Workers == 0 {
		cc.Workers = max(len(cc.WorkerDelays), 3)
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
		Workers: cc.Workers, Strategies: cc.Strategies, InBroker: cc.InBroker, Rounds: cc.Rounds, Mix: load.Mix.String(),
		Clients: load.Clients, MaxAttempts: load.MaxAttempts, DurationS: load.Duration.Seconds(),
		Requests: load.Requests, WarmupS: load.Warmup.Seconds(), Mode: "closed",
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
				r, err := Run(ctx, cfg)
				if r != nil {
					r.Target = t.name
					rr := RunResult{Round: round + 1, Target: t.name, Report: r}
					rr.CPU, rr.Cores = w.perRequest(r.OK + r.Errors)
					lvl.Runs = append(lvl.Runs, rr)
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

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

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

// cluster is the child processes of a comparison.
type cluster struct {
	cc      *CompareConfig
	dir     string
	tempDir bool
	env     []string
	url     string
	broker  *child
	workers []*child
	disp    *child
	dispN   int
	dispFor string // the running dispatcher's strategy
	ctl     *client.Client
}

// child is one process.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it exited
	err  error         // its exit status, once done
}

func (c *cluster) event(msg string) {
	if c.cc.Event != nil {
		c.cc.Event(msg)
	}
}

func (c *cluster) start(ctx context.Context) error {
	c.dir = c.cc.Dir
	if c.dir == "" {
		d, err := os.MkdirTemp("", "bilancia-bench-")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		c.dir, c.tempDir = d, true
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	// The children get this environment without BILANCIA_ settings, so
	// that what they run is what the flags below say (request logging on,
	// default timeouts), whatever the caller's shell holds.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BILANCIA_") {
			c.env = append(c.env, kv)
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.url = "nats://127.0.0.1:" + strconv.Itoa(port)
	args := []string{"broker", "--host", "127.0.0.1", "--port", strconv.Itoa(port)}
	if c.cc.InBroker {
		subj := wire.Subjects{Prefix: c.cc.Load.Prefix}
		args = append(args, "--dispatcher", "--id", inBrokerID, "--subject", subj.InBroker(),
			"--strategy", c.cc.inBrokerStrategy(),
			"--log", filepath.Join(c.dir, inBrokerID+"-loadbalancer.log"))
		if c.cc.Load.Prefix != "" {
			args = append(args, "--prefix", c.cc.Load.Prefix)
		}
	}
	if c.broker, err = c.spawn("broker", args...); err != nil {
		return err
	}
	if err := c.waitBroker(ctx); err != nil {
		return err
	}
	for i := range c.cc.Workers {
		id := fmt.Sprintf("bw-%d", i+1)
		args := []string{"worker", "--nats", c.url, "--id", id, "--serve-direct"}
		if c.cc.Load.Prefix != "" {
			args = append(args, "--prefix", c.cc.Load.Prefix)
		}
		if i < len(c.cc.WorkerDelays) && c.cc.WorkerDelays[i] > 0 {
			args = append(args, "--delay", c.cc.WorkerDelays[i].String())
		}
		if c.cc.WorkerConcurrency > 0 {
			args = append(args, "--concurrency", strconv.Itoa(c.cc.WorkerConcurrency))
		}
		w, err := c.spawn("worker "+id, args...)
		if err != nil {
			return err
		}
		c.workers = append(c.workers, w)
	}
	c.ctl, err = client.Connect(client.Config{URL: c.url, Prefix: c.cc.Load.Prefix, Name: "bench-control"})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.cc.InBroker {
		return c.waitSees(ctx, inBrokerID)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *cluster) spawn(name string, args ...string) (*child, error) {
	logName := strings.ReplaceAll(name, " ", "-") + ".out"
	f, err := os.Create(filepath.Join(c.dir, logName))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(c.cc.Exe, args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = f, f
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	ch := &child{name: name, cmd: cmd, log: f.Name(), done: make(chan struct{})}
	go func() { ch.err = cmd.Wait(); close(ch.done) }()
	c.event(fmt.Sprintf("started %s (pid %d): %s", name, cmd.Process.Pid, strings.Join(args, " ")))
	return ch, nil
}

// exited describes a child that stopped on its own.
func (ch *child) exited() error {
	return fmt.Errorf("bench: %s exited early (%v); its output: %s%s", ch.name, ch.err, ch.log, tail(ch.log))
}

// tail returns the last lines of a log, to show with an error.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 5 {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

func (c *cluster) alive() error {
	for _, ch := range append([]*child{c.broker, c.disp}, c.workers...) {
		if ch == nil {
			continue
		}
		select {
		case <-ch.done:
			return ch.exited()
		default:
		}
	}
	return nil
}

// poll calls f every 20ms until it returns nil, a child exits, ctx ends
// or the ready timeout passes.
func (c *cluster) poll(ctx context.Context, what string, f func() error) error {
	deadline := time.Now().Add(c.cc.ReadyTimeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		err := f()
		if err == nil {
			return nil
		}
		if e := c.alive(); e != nil {
			return e
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s: not ready after %v: %v", what, c.cc.ReadyTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *cluster) waitBroker(ctx context.Context) error {
	return c.poll(ctx, "broker at "+c.url, func() error {
		nc, err := nats.Connect(c.url, nats.Timeout(time.Second), nats.NoReconnect())
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
}

// ensureDispatcher has a dispatcher with strategy running and seeing every
// worker.
func (c *cluster) ensureDispatcher(ctx context.Context, strategy string) error {
	if c.disp != nil && c.dispFor == strategy {
		return nil
	}
	if c.disp != nil {
		c.stop(c.disp)
		c.disp = nil
	}
	c.dispN++
	id := fmt.Sprintf("bd-%d", c.dispN)
	f := strings.Fields(strategy) // the strategy, then any extra flags
	args := []string{"dispatcher", "--nats", c.url, "--id", id, "--strategy", f[0],
		"--log", filepath.Join(c.dir, id+"-loadbalancer.log")}
	args = append(args, f[1:]...)
	if c.cc.Load.Prefix != "" {
		args = append(args, "--prefix", c.cc.Load.Prefix)
	}
	d, err := c.spawn("dispatcher "+id, args...)
	if err != nil {
		return err
	}
	c.disp, c.dispFor = d, strategy
	if err := c.waitSees(ctx, id); err != nil {
		return err
	}
	c.event(fmt.Sprintf("dispatcher %s (%s) sees %d workers", id, strategy, c.cc.Workers))
	return nil
}

// waitSees waits until dispatcher id sees every worker up.
func (c *cluster) waitSees(ctx context.Context, id string) error {
	return c.poll(ctx, fmt.Sprintf("dispatcher %s seeing %d workers", id, c.cc.Workers), func() error {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		sts, err := c.ctl.Status(sctx, 20*time.Millisecond)
		if err != nil {
			return err
		}
		for _, st := range sts {
			if st.Dispatcher != id {
				continue
			}
			up := 0
			for _, w := range st.Workers {
				if w.State == wire.StateUp {
					up++
				}
			}
			if up < c.cc.Workers {
				return fmt.Errorf("it sees %d up", up)
			}
			return nil
		}
		return errors.New("no status from it yet")
	})
}

func processMemory(target string, ch *child) Memory {
	m := Memory{Target: target, PID: ch.cmd.Process.Pid}
	var err error
	m.RSSKiB, m.PeakKiB, err = ReadMemory(m.PID)
	if err != nil {
		m.Err = err.Error()
	}
	return m
}

// ReadMemory returns a process's resident set (VmRSS) and its peak (VmHWM)
// in KiB, from /proc/<pid>/status (Linux only).
func ReadMemory(pid int) (rss, peak int64, err error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("bench: read memory of %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("bench: %s of %d: %q", k, pid, v)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			peak = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("bench: no VmRSS for %d", pid)
	}
	return rss, peak, sc.Err()
}

// stopGrace is how long a child may take to stop after SIGTERM before it
// is killed.
const stopGrace = 5 * time.Second

// stop ends a child: SIGTERM to its process group, SIGKILL after
// stopGrace.
func (c *cluster) stop(ch *child) {
	select {
	case <-ch.done:
		return
	default:
	}
	_ = signalGroup(ch.cmd, syscall.SIGTERM)
	select {
	case <-ch.done:
	case <-time.After(stopGrace):
		_ = signalGroup(ch.cmd, syscall.SIGKILL)
		<-ch.done
	}
	c.event(fmt.Sprintf("stopped %s", ch.name))
}

// stopAll stops the dispatcher and the workers together, then the broker.
func (c *cluster) stopAll() {
	if c.ctl != nil {
		c.ctl.Close()
	}
	var group []*child
	if c.disp != nil {
		group = append(group, c.disp)
	}
	group = append(group, c.workers...)
	done := make(chan struct{}, len(group))
	for _, ch := range group {
		go func() { c.stop(ch); done <- struct{}{} }()
	}
	for range group {
		<-done
	}
	if c.broker != nil {
		c.stop(c.broker)
	}
}

var errNoCPU = errors.New("bench: CPU time is only read on Linux")

// cpuWindow holds the CPU times of every process at the start and the end
// of a run's measurement.
type cpuWindow struct {
	mu         sync.Mutex
	start, end map[string]time.Duration
	t0, t1     time.Time
}

func (w *cpuWindow) mark(c *cluster, end bool) {
	s, now := c.cpuSample(), time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if end {
		w.end, w.t1 = s, now
	} else {
		w.start, w.t0 = s, now
	}
}

// perRequest returns each role's CPU time per request in µs, and the cores
// kept busy; nil if unknown.
func (w *cpuWindow) perRequest(n uint64) (map[string]float64, float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wall := w.t1.Sub(w.t0)
	if w.start == nil || w.end == nil || n == 0 || wall <= 0 {
		return nil, 0
	}
	out := map[string]float64{}
	var total time.Duration
	for role, a := range w.start {
		b, ok := w.end[role]
		if !ok {
			continue
		}
		total += b - a
		out[role] = float64((b - a).Microseconds()) / float64(n)
	}
	out["total"] = float64(total.Microseconds()) / float64(n)
	return out, total.Seconds() / wall.Seconds()
}

// cpuSample reads the CPU time used so far by each role.
func (c *cluster) cpuSample() map[string]time.Duration {
	s := map[string]time.Duration{}
	add := func(role string, pid int) {
		if d, err := processCPU(pid); err == nil {
			s[role] += d
		}
	}
	add("bench", 0)
	add("broker", c.broker.cmd.Process.Pid)
	if c.disp != nil {
		add("dispatcher", c.disp.cmd.Process.Pid)
	}
	for _, w := range c.workers {
		add("workers", w.cmd.Process.Pid)
	}
	return s
}
