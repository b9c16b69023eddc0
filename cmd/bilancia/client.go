package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/chzyer/readline"

	"github.com/bilancia/bilancia/client"
	"github.com/bilancia/bilancia/client/repl"
)

// ClientFlags configure the client and its REPL.
type ClientFlags struct {
	Name     string        `help:"Client name sent in Calc-Client (default: client-<host>-<pid>)."`
	Timeout  time.Duration `help:"Deadline of each request (default: 10s beyond the time the op asks for, as sleep N and spin N do)."`
	Retries  int           `default:"3" help:"Extra sends of a request when its dispatcher vanished or none listens (0 = none)."`
	Inflight int           `default:"64" help:"Requests in flight for random N."`
	Quiet    bool          `short:"q" help:"random N prints only its summary."`
	Full     bool          `help:"Print long results whole on a terminal too (elsewhere they always are; in the REPL, last prints the last one whole)."`
	History  string        `placeholder:"FILE" predictor:"file" help:"The REPL's history file (default $XDG_STATE_HOME/bilancia/history, else ~/.bilancia_history; none = keep no history)."`
}

func (f *ClientFlags) config(n *NATSFlags) (client.Config, error) {
	opts, err := n.options()
	if err != nil {
		return client.Config{}, err
	}
	return client.Config{
		URL: n.NATS, Name: f.Name, Prefix: n.Prefix, Timeout: f.Timeout,
		MaxAttempts: f.Retries + 1, Options: opts,
	}, nil
}

// ClientCmd runs the REPL, or commands given with -c or on stdin.
type ClientCmd struct {
	NATSFlags
	ClientFlags
	Command []string `short:"c" sep:"none" help:"Run this command and exit (repeatable; ';' outside JSON separates several)."`
}

func (c *ClientCmd) Run(g *globals) error {
	cfg, err := c.config(&c.NATSFlags)
	if err != nil {
		return err
	}
	cl, err := client.Connect(cfg)
	if err != nil {
		if errors.Is(err, client.ErrNoServer) {
			return &exitError{1, fmt.Sprintf("no NATS server answered at %s; start one with `bilancia broker` or `bilancia up`.", c.NATS)}
		}
		return &exitError{1, err.Error()}
	}
	defer cl.Close()
	// A signal ends the requests in flight at once, saying so: their
	// dispatcher is elsewhere, and the user wants out.
	return runREPL(g.ctx, cl, c.Command, &c.ClientFlags, 0, nil)
}

// runREPL runs -c commands, piped stdin, or the interactive REPL. Without
// a terminal (-c, piped input) a failed request makes exit status 1, for
// scripts; an interactive session exits 0 unless the REPL itself failed,
// as error replies were already shown. Once ctx ends, the requests in
// flight may take grace more. notices, if set, gets the writer of the
// lines to print above the prompt (repl.Config.Notices).
func runREPL(ctx context.Context, cl *client.Client, commands []string, f *ClientFlags, grace time.Duration, notices func(io.Writer)) error {
	stdout := readline.IsTerminal(int(os.Stdout.Fd()))
	cfg := repl.Config{
		Out:         os.Stdout,
		Concurrency: f.Inflight,
		Quiet:       f.Quiet,
		Color:       stdout && os.Getenv("NO_COLOR") == "",
		Progress:    stdout,
		Full:        f.Full || !stdout,
		Grace:       grace,
		Notices:     notices,
		HistoryFile: f.History,
	}
	if len(commands) > 0 {
		var cmds []string
		for _, c := range commands {
			cmds = append(cmds, repl.SplitCommands(c)...)
		}
		return exitStatus(repl.RunCommandsWith(ctx, cl, cmds, cfg), false)
	}
	cfg.Interactive = stdout && readline.IsTerminal(int(os.Stdin.Fd()))
	failed, err := repl.Run(ctx, cl, cfg)
	if err != nil {
		return err
	}
	return exitStatus(failed, cfg.Interactive)
}

// exitStatus is 1 when a request failed without a terminal, else 0.
func exitStatus(failed int, interactive bool) error {
	if failed > 0 && !interactive {
		return &exitError{1, ""}
	}
	return nil
}

// StatusCmd prints each dispatcher's worker table, once or every
// --interval.
type StatusCmd struct {
	NATSFlags
	JSON     bool          `help:"Print the raw JSON status of each dispatcher."`
	Wait     time.Duration `default:"200ms" help:"How long to wait for more dispatchers after the first answers."`
	Watch    bool          `short:"w" help:"Print the tables again every --interval until Ctrl-C; on a terminal they are redrawn in place."`
	Interval time.Duration `default:"2s" help:"How often --watch asks again."`
}

func (c *StatusCmd) Run(g *globals) error {
	if c.Watch && c.Interval <= 0 {
		return &exitError{2, "--interval must be positive"}
	}
	opts, err := c.options()
	if err != nil {
		return err
	}
	cl, err := client.Connect(client.Config{URL: c.NATS, Prefix: c.Prefix, Name: "bilancia-status", Options: opts})
	if err != nil {
		return &exitError{1, fmt.Sprintf("no NATS server answered at %s.", c.NATS)}
	}
	defer cl.Close()
	if !c.Watch {
		var out bytes.Buffer
		err := c.once(g.ctx, cl, &out)
		os.Stdout.Write(out.Bytes())
		return err
	}
	return c.watch(g.ctx, cl, os.Stdout, readline.IsTerminal(int(os.Stdout.Fd())))
}

// once writes the dispatchers' status to out, or returns why it cannot.
func (c *StatusCmd) once(ctx context.Context, cl *client.Client, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := cl.Status(ctx, c.Wait)
	if err != nil {
		return &exitError{1, err.Error()}
	}
	if c.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	repl.PrintStatus(out, st, time.Now())
	for _, s := range st {
		if s.Truncated {
			fmt.Fprintf(out, "dispatcher %s: %d of %d workers shown, the first by id (the table does not fit in one message): %v\n",
				s.Dispatcher, len(s.Workers), s.Total, s.Counts)
		}
	}
	return nil
}

// clearScreen moves the cursor home and clears the screen (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// watch prints the status every c.Interval until ctx ends (Ctrl-C). On a
// terminal each round replaces the last, drawn whole at once so that it
// does not flicker; otherwise the rounds follow each other, each under a
// line with its time. A round that fails says why, and the watch goes on.
func (c *StatusCmd) watch(ctx context.Context, cl *client.Client, out io.Writer, terminal bool) error {
	tick := time.NewTicker(c.Interval)
	defer tick.Stop()
	var buf bytes.Buffer
	for {
		buf.Reset()
		if terminal {
			buf.WriteString(clearScreen)
		}
		fmt.Fprintf(&buf, "%s, every %s (Ctrl-C to stop)\n\n", time.Now().Format("15:04:05"), c.Interval)
		if err := c.once(ctx, cl, &buf); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(&buf, "%v\n", err)
		}
		if !terminal {
			buf.WriteString("\n")
		}
		if _, err := out.Write(buf.Bytes()); err != nil {
			return err // e.g. a closed pipe: nobody reads
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
