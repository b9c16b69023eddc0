package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/bilancia/bilancia/broker"
	"github.com/bilancia/bilancia/calcworker"
	"github.com/bilancia/bilancia/client"
)

// UpCmd runs everything in one process: broker, dispatcher, workers, REPL.
type UpCmd struct {
	Host      string `default:"127.0.0.1" help:"Broker listen address."`
	Insecure  bool   `help:"Listen beyond loopback without authentication (refused otherwise)."`
	Auth      string `placeholder:"DIR" help:"Run the broker with --auth DIR, and the roles inside with their credentials."`
	Port      int    `default:"4222" help:"Broker port; if taken, a free one is used."`
	Prefix    string `env:"BILANCIA_PREFIX" default:"calc" help:"Subject prefix."`
	Workers   int    `default:"3" help:"Calc workers to start."`
	Dashboard bool   `default:"true" negatable:"" help:"Serve the live dashboard: on --http if given, else on 127.0.0.1:8080 or, if taken, a free port (--no-dashboard: none)."`
	Metrics   string `placeholder:"ADDR" help:"Serve Prometheus metrics on http://ADDR/metrics (broker, dispatcher and workers on one endpoint), e.g. 127.0.0.1:9100 (off by default; beyond loopback it needs --metrics-token-file or --metrics-insecure)."`
	MetricsAuthFlags
	DispatcherFlags
	WorkerFlags
	ClientFlags
	Command []string `short:"c" sep:"none" help:"Run this command and exit instead of the REPL (repeatable; ';' outside JSON separates several)."`
}

func (c *UpCmd) Run(g *globals) error {
	if c.Workers < 0 || c.Workers > 1000 {
		return fmt.Errorf("--workers must be between 0 and 1000")
	}
	workerIDs := make([]string, c.Workers) // random ids
	if c.Auth != "" && c.Workers > 0 {
		// Its workers' own credential, before the broker reads the
		// directory.
		if err := upWorkers(c.Auth, c.Workers); err != nil {
			return err
		}
		workerIDs = broker.WorkerIDs(upPool, c.Workers)
	}
	b, err := broker.New(broker.Config{Host: c.Host, Port: c.Port, PortFallback: true, Insecure: c.Insecure,
		AuthDir: c.Auth, AuthPrefix: c.Prefix})
	if err != nil {
		return err
	}
	ms, err := startMetrics(c.Metrics, &c.MetricsAuthFlags)
	if err != nil {
		return err
	}
	defer stopMetrics(ms)
	if err := b.Start(g.ctx); err != nil {
		return err
	}
	defer b.Shutdown()
	// SIGHUP reads the broker's credentials (--auth) again instead of
	// ending the session; without --auth there is nothing to read, and
	// the signal is logged as ignored.
	if c.Auth != "" {
		defer onSignal(reloadConfig, func() {
			if err := b.Reload(); err != nil {
				signalLogger().Error("broker not reloaded", "error", err.Error())
				return
			}
			signalLogger().Info("broker reloaded", "auth", c.Auth)
		})()
	}
	url := b.ClientURL()

	// Everything in this process reaches the broker in process, without
	// sockets, which makes the detour through the dispatcher cheaper than
	// over loopback TCP (README.md and BENCHMARKS.md). Other processes
	// (nats CLI, more clients) use the URL.
	nf := NATSFlags{NATS: url, Prefix: c.Prefix}
	// With --auth each role connects with its own credential.
	as := func(file string) *NATSFlags {
		f := nf
		if c.Auth != "" {
			f.NKey = filepath.Join(c.Auth, file)
		}
		return &f
	}
	if c.Dashboard && c.HTTP == "" {
		c.HTTP = defaultDashboardAddr()
	}
	d, err := c.startDispatcher(as(broker.DispatcherCredential), b.Server(), nil)
	if err != nil {
		return err
	}
	var wm *calcworker.Metrics // nil: the workers count nothing
	if ms != nil {
		wm = calcworker.NewMetrics()
	}
	ws, err := c.startWorkers(workerPlan{
		ids: workerIDs, prefix: c.Prefix, heartbeat: c.Heartbeat, log: d.events, metrics: wm,
		connect: func() (*nats.Conn, error) {
			return as(filepath.Join(broker.WorkersDir, upPool+".nk")).connect("bilancia-worker", d.events, nats.InProcessServer(b.Server()))
		},
	})
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = d.stop(ctx)
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		// Workers drain first, so that the dispatcher sees them leave and
		// their last replies reach it; then the dispatcher; the broker
		// last (deferred).
		_ = ws.stop(ctx, nil)
		_ = d.stop(ctx)
	}()
	ms.Add(gatherers(b, d, wm)...)
	// What the signals do goes to the log, as the dispatcher's events,
	// and to the terminal, above the REPL's prompt while it runs.
	notices := &noticeWriter{}
	defer useSignalLog(slog.New(slog.NewMultiHandler(d.events.Handler(), slog.NewTextHandler(notices, nil))))()

	fmt.Fprintf(os.Stderr, "bilancia up: NATS at %s, dispatcher %s, %d workers, log %s\n", url, d.ID(), len(ws.workers), c.Log)
	fmt.Fprint(os.Stderr, watchHint(c.Prefix, url))
	if d.dash != nil {
		fmt.Fprintf(os.Stderr, "dashboard at %s\n", d.dash.URL())
	}
	if c.Auth != "" {
		fmt.Fprintf(os.Stderr, "credentials in %s: the nats CLI needs one, e.g. --nkey %s\n", c.Auth, filepath.Join(c.Auth, broker.AdminCredential))
	}

	ccfg, err := c.ClientFlags.config(as(broker.ClientCredential))
	if err != nil {
		return err
	}
	ccfg.Subject = c.Subject
	ccfg.Options = append(ccfg.Options, nats.InProcessServer(b.Server()))
	cl, err := client.Connect(ccfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Wait until the dispatcher has seen the workers, so that the first
	// command does not meet an empty rotation.
	deadline := time.Now().Add(5 * time.Second)
	for d.LiveWorkers() < len(ws.workers) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// On SIGTERM the dispatcher here answers what it holds, so the REPL
	// waits for those replies, as long as the dispatcher's own drain.
	return runREPL(g.ctx, cl, c.Command, &c.ClientFlags, shutdownGrace, notices.set)
}

// watchHint tells how to watch the traffic with the nats CLI: the prefix's
// subjects, and replies, which travel on inboxes outside it.
func watchHint(prefix, url string) string {
	return fmt.Sprintf("watch from another terminal: nats sub '%s.>' --server %s  (replies too: nats sub '>')\n", prefix, url)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// noticeWriter writes to the REPL's output above its prompt while the
// interactive REPL runs (set), else to stderr.
type noticeWriter struct {
	mu sync.Mutex
	w  io.Writer // nil = os.Stderr
}

func (n *noticeWriter) set(w io.Writer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.w = w
}

func (n *noticeWriter) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.w == nil {
		return os.Stderr.Write(p)
	}
	return n.w.Write(p)
}

// upPool names the credential of up --auth's workers, DIR/workers/up.nk,
// and their ids (up, or up-0 to up-<n-1>).
const upPool = "up"

// upWorkers makes DIR/workers/up.nk act for n workers: up owns it, and
// writes it again when an earlier run had another number.
func upWorkers(dir string, n int) error {
	if err := broker.EnsureCredentials(dir); err != nil {
		return err
	}
	path := filepath.Join(dir, broker.WorkersDir, upPool+".nk")
	if _, replicas, err := broker.WorkerOf(path); err == nil && max(replicas, 1) == n {
		return nil
	}
	_ = broker.RemoveWorker(dir, upPool)
	_, err := broker.AddWorker(dir, upPool, n)
	return err
}
