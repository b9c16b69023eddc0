// Command bilancia runs every role of Bilancia: broker, dispatcher, calc
// worker, client, and all of them at once with `bilancia up`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
)

// CLI is the command line. Every flag can also be set from the environment
// as BILANCIA_<COMMAND PATH>_<FLAG> (BILANCIA_WORKER_ID), the connection
// flags every role shares as BILANCIA_<FLAG> (BILANCIA_NATS): roleEnvars.
type CLI struct {
	Up         UpCmd         `cmd:"" help:"Run an embedded broker, a dispatcher, three workers and the REPL in one process."`
	Broker     BrokerCmd     `cmd:"" help:"Run an embedded NATS server (optionally clustered)."`
	Dispatcher DispatcherCmd `cmd:"" help:"Run a dispatcher."`
	Worker     WorkerCmd     `cmd:"" help:"Run a calc worker."`
	Client     ClientCmd     `cmd:"" help:"Run the client REPL, or commands with -c or from stdin."`
	Status     StatusCmd     `cmd:"" help:"Print each dispatcher's worker table."`
	Ctl        CtlCmd        `cmd:"" help:"Drain or resume a worker on every dispatcher at run time."`
	Bench      BenchCmd      `cmd:"" help:"Generate load and report latency, throughput and errors; --compare measures the dispatcher against the workers' queue group."`
	Health     HealthCmd     `cmd:"" help:"Check a broker, dispatcher or worker, for container health checks (exit 0 = healthy)."`
	Auth       AuthCmd       `cmd:"" help:"Make the credentials of broker --auth: init, add-client, remove-client, add-worker, remove-worker."`
	Signal     SignalCmd     `cmd:"" help:"Send a running role a signal by name, as kill would: ldm puts a broker in lame duck mode (a container's preStop hook)."`
	Version    VersionCmd    `cmd:"" help:"Print the version."`
	Completion CompletionCmd `cmd:"" help:"Print a shell's completion script: source <(bilancia completion bash)."`

	VersionFlag kong.VersionFlag `name:"version" env:"-" help:"Print the version and exit."` // no environment variable: it would stop every command
}

// shutdownGrace bounds a role's drain after SIGTERM.
const shutdownGrace = 30 * time.Second

// exitError carries an exit code with a message already shown or to show.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	var cli CLI
	parser, err := newParser(&cli)
	if err != nil {
		panic(err) // the CLI struct is wrong: a programming error
	}
	completeCommandLine(parser) // answers and exits when a shell asks
	kctx, err := parser.Parse(commandLine(os.Args[1:]))
	if err != nil {
		fmt.Fprint(os.Stderr, usageError(err))
		os.Exit(exitCode(err))
	}
	for _, w := range staleEnv(parser, kctx.Selected(), os.Environ()) {
		fmt.Fprintln(os.Stderr, "bilancia: "+w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = kctx.Run(&globals{ctx: ctx})
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "bilancia: "+ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "bilancia: "+err.Error())
	os.Exit(1)
}

// globals is what every command's Run receives.
type globals struct {
	ctx context.Context // ends on SIGINT or SIGTERM
}
