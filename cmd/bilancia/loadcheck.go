package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/bilancia/bilancia/loadcheck"
)

// LoadCheckCmd is `bilancia health load`, hidden: the engine of
// scripts/compose-test. It sends a bounded load, checks every reply,
// optionally runs a command that injects a fault (and one that heals it),
// and prints one fault-matrix line. It exits 1 if a request did not get
// exactly one correct reply, or the deployment did not become whole again
// when --rejoin asks for it.
type LoadCheckCmd struct {
	NATSFlags
	Requests   int           `default:"3000" help:"Requests to send."`
	Rate       float64       `default:"250" help:"Requests per second (open loop)."`
	Clients    int           `default:"4" help:"NATS connections sharing the load; connection i dials the --nats URLs starting at the i-th."`
	MaxOpen    int           `default:"400" help:"Requests in flight at most."`
	Timeout    time.Duration `default:"10s" help:"Deadline of each request."`
	SleepEvery int           `default:"10" help:"One request in this many is a sleep, answered with the worker's id (-1 = none)."`
	Sleep      time.Duration `default:"20ms" help:"Length of those sleeps: work in flight when the fault hits."`

	Dispatchers []string      `help:"Dispatcher ids of the whole deployment (with --workers)."`
	Workers     []string      `help:"Worker ids every dispatcher must list up."`
	WaitWhole   time.Duration `default:"60s" help:"Before the load, wait this long at most for the deployment to be whole."`

	Fault      string        `default:"none" help:"Name of the fault, for the report."`
	Inject     string        `help:"Command that injects the fault, run without a shell (split on spaces) once --inject-at requests were sent."`
	InjectAt   int           `help:"Requests sent before the injection (default a quarter)."`
	Heal       string        `help:"Command that heals the fault, run --heal-after the injection."`
	HealAfter  time.Duration `default:"5s" help:"When to run --heal, from the injection."`
	Window     time.Duration `help:"How long after the injection requests count as during the fault (default --heal-after + 3s, or 3s)."`
	Detect     string        `help:"How to time detection: resend, view, disconnect, worker-left:<id>, or several (the earliest counts); empty = none."`
	Rejoin     bool          `help:"Recovery includes the deployment whole again after the heal."`
	RejoinWait time.Duration `default:"60s" help:"Bound of the wait for --rejoin after the load."`
	PollEvery  time.Duration `default:"100ms" help:"Status poll period."`
	Quiet      bool          `short:"q" help:"Print only the report line."`
}

func (c *LoadCheckCmd) Run(g *globals) error {
	opts, err := c.options()
	if err != nil {
		return err
	}
	var urls []string
	for _, u := range strings.Split(c.NATS, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	logf := func(format string, args ...any) {
		if !c.Quiet {
			fmt.Fprintf(os.Stderr, "%s loadcheck: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
		}
	}
	cfg := loadcheck.Config{
		URLs: urls, Options: opts, Prefix: c.Prefix,
		Requests: c.Requests, Rate: c.Rate, Clients: c.Clients, MaxOpen: c.MaxOpen,
		Timeout: c.Timeout, SleepEvery: c.SleepEvery, Sleep: c.Sleep,
		Expect:    loadcheck.View{Dispatchers: c.Dispatchers, Workers: c.Workers},
		WaitWhole: c.WaitWhole,
		Fault:     c.Fault, InjectAt: c.InjectAt, Window: c.Window, Detect: c.Detect,
		Rejoin: c.Rejoin, RejoinWait: c.RejoinWait, PollEvery: c.PollEvery,
		Logf: logf,
	}
	if c.Requests <= 0 {
		return &exitError{2, "--requests must be positive"}
	}
	if c.Inject != "" {
		cfg.Inject = command(c.Inject, logf)
	}
	if c.Heal != "" {
		if c.Inject == "" {
			return &exitError{2, "--heal needs --inject"}
		}
		cfg.Heal, cfg.HealAfter = command(c.Heal, logf), c.HealAfter
	}
	rep, err := loadcheck.Run(g.ctx, cfg)
	if rep == nil {
		if errors.Is(err, loadcheck.ErrConfig) {
			return &exitError{2, err.Error()}
		}
		return &exitError{1, err.Error()}
	}
	fmt.Println(rep.Line())
	for _, f := range rep.Failures {
		fmt.Fprintln(os.Stderr, "  "+f)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &exitError{130, "interrupted"}
	case err != nil:
		return &exitError{1, err.Error()}
	}
	if ferr := rep.Err(); ferr != nil {
		return &exitError{1, "fault " + rep.Fault + ": " + ferr.Error()}
	}
	return nil
}

// command returns a fault function that runs line, split on spaces, with
// no shell; its output goes to stderr.
func command(line string, logf func(string, ...any)) func(context.Context) error {
	args := strings.Fields(line)
	return func(ctx context.Context) error {
		logf("run: %s", line)
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
}
