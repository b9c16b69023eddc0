package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/dispatcher"
)

// UpCmd runs everything in one process: broker, dispatcher, workers, REPL.
type UpCmd struct {
	Host    string `default:"127.0.0.1" help:"Broker listen address."`
	Port    int    `default:"4222" help:"Broker port; if taken, a free one is used."`
	Prefix  string `default:"calc" help:"Subject prefix."`
	Workers int    `default:"3" help:"Calc workers to start."`
	DispatcherFlags
	WorkerFlags
	ClientFlags
	Command []string `short:"c" help:"Run this command and exit instead of the REPL (repeatable; ';' separates)."`
}

func (c *UpCmd) Run(g *globals) error {
	if c.Workers < 0 || c.Workers > 1000 {
		return fmt.Errorf("--workers must be between 0 and 1000")
	}
	events, lf, err := c.openLog(nil)
	if err != nil {
		return err
	}
	defer lf.Close()

	b, err := broker.New(broker.Config{Host: c.Host, Port: c.Port, PortFallback: true})
	if err != nil {
		return err
	}
	if err := b.Start(g.ctx); err != nil {
		return err
	}
	defer b.Shutdown()
	url := b.ClientURL()

	nf := NATSFlags{NATS: url, Prefix: c.Prefix}
	// Everything in this process reaches the broker in process, without
	// sockets: at one request at a time the detour through the dispatcher
	// then costs a fraction of what it does over loopback TCP (README.md
	// and BENCHMARKS.md give the figures), and the REPL's random 20000
	// ran at 22-25k req/s against 18-19k. Other processes (nats CLI, more
	// clients) use the URL.
	inproc := nats.InProcessServer(b.Server())
	dnc, err := nf.connect("bilancia-dispatcher", events, inproc)
	if err != nil {
		return err
	}
	defer dnc.Close()
	dcfg := dispatcher.Config{Conn: dnc, Prefix: c.Prefix, Logger: events, RequestLog: lf}
	c.DispatcherFlags.config(&dcfg)
	d, err := dispatcher.New(dcfg)
	if err != nil {
		return err
	}
	if err := d.Start(); err != nil {
		return err
	}

	var workers []*calcworker.Worker
	for range c.Workers {
		wnc, err := nf.connect("bilancia-worker", events, inproc)
		if err != nil {
			return err
		}
		defer wnc.Close()
		wcfg := c.WorkerFlags.config("", c.Prefix, c.Heartbeat)
		wcfg.Conn = wnc
		wcfg.OnError = func(err error) { events.Warn(err.Error()) }
		w, err := calcworker.New(wcfg)
		if err != nil {
			return err
		}
		if err := w.Start(); err != nil {
			return err
		}
		workers = append(workers, w)
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		// Workers drain first, so that the dispatcher sees them leave and
		// their last replies reach it; then the dispatcher; the broker and
		// the log close last (deferred).
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); _ = w.Shutdown(ctx) }()
		}
		wg.Wait()
		_ = d.Shutdown(ctx)
	}
	defer stop()

	fmt.Fprintf(os.Stderr, "bilancia up: NATS at %s, dispatcher %s, %d workers, log %s\n", url, d.ID(), len(workers), c.Log)
	fmt.Fprintf(os.Stderr, "watch from another terminal: nats sub 'calc.>' --server %s\n", url)

	ccfg, err := c.ClientFlags.config(&nf)
	if err != nil {
		return err
	}
	ccfg.Subject = c.Subject
	ccfg.Options = append(ccfg.Options, inproc)
	cl, err := client.Connect(ccfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Wait until the dispatcher has seen the workers, so that the first
	// command does not meet an empty rotation.
	deadline := time.Now().Add(5 * time.Second)
	for len(d.Membership().Live()) < len(workers) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return runREPL(g.ctx, cl, c.Command, &c.ClientFlags)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
