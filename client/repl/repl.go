// Package repl is Bilancia's client REPL: it reads commands, sends the ones
// that are not REPL commands as calculation requests, and prints each reply
// on a line of its own as it arrives.
//
// With a terminal (Config.Interactive) typing never waits for replies: every
// request runs in its own goroutine and its reply is printed above the prompt.
// Without one (piped input, -c) the commands run one after another, so the
// output follows the input.
package repl

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bilancia/bilancia/client"
)

// Config configures Run. Zero values mean the documented defaults.
type Config struct {
	In  io.Reader // nil = os.Stdin
	Out io.Writer // nil = os.Stdout
	Err io.Writer // nil = os.Stderr; interactive only: readline's own messages

	// Interactive says a terminal is present: read with readline (history,
	// line editing, a "> " prompt) and print replies above the prompt.
	Interactive bool
	// HistoryFile keeps the interactive history, at most 1000 lines.
	// "" = $XDG_STATE_HOME/bilancia/history when XDG_STATE_HOME is set,
	// else ~/.bilancia_history; NoHistory ("none") = keep none. Errors
	// writing it are ignored: history is a convenience.
	HistoryFile string
	// Concurrency bounds the requests of one `random N` in flight. 0 = 64.
	Concurrency int
	// Quiet makes `random N` print only its summary, not every reply.
	Quiet bool
	// Seed makes `random N` repeatable. 0 = a random seed.
	Seed uint64
	// Color colours replies (ok green, errors red, workers dim). The
	// caller decides: a terminal, and NO_COLOR unset or empty.
	Color bool
	// Progress shows a line of progress for a long `random N`, redrawn a
	// few times a second (in the prompt when Interactive). The caller
	// decides: only on a terminal.
	Progress bool
	// Full prints results whole; otherwise a long result is cut to a
	// line, and `last` prints the last one whole. The caller decides: cut
	// only on a terminal.
	Full bool
	// Notices, if set, is called by the interactive REPL with a writer
	// that prints whole lines above the prompt, never inside the line
	// being typed, and with nil when it ends: for the log lines of the
	// process around it (up's signals).
	Notices func(w io.Writer)
	// Grace is how long requests in flight may still take once ctx has
	// ended (SIGTERM): a stopping dispatcher answers what it holds. 0 =
	// none: they end at once, saying that the client stopped.
	Grace time.Duration

	echo bool // tests: draw the line being typed as on a terminal
}

const (
	defaultConcurrency = 64
	// maxBackground bounds the single requests in flight in interactive
	// mode: beyond it typing waits, instead of goroutines piling up.
	maxBackground = 1024
	// maxRandom bounds `random N`.
	maxRandom = 1_000_000
	// maxLine is the longest input line (a long expr is still one line).
	maxLine = 1 << 20
	// hint answers Ctrl-C on an empty line.
	hint = "^C — type exit or press Ctrl-D to leave"
)

// Run reads commands until exit, quit, end of input (Ctrl-D) or ctx is
// cancelled, and returns how many requests failed (an error reply or no
// reply). Before it returns, requests still in flight finish, each within
// its own deadline; cancelling ctx cuts them short.
func Run(ctx context.Context, cl *client.Client, cfg Config) (failed int, err error) {
	if cfg.In == nil {
		cfg.In = os.Stdin
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Err == nil {
		cfg.Err = os.Stderr
	}
	if cfg.Interactive {
		return runInteractive(ctx, cl, cfg)
	}
	s := newSession(cl, cfg, cfg.Out)
	var stop func()
	s.calls, stop = afterGrace(ctx, cfg.Grace)
	defer stop()
	err = s.readLines(ctx, cfg.In)
	return int(s.failed.Load()), err
}

// RunCommands runs cmds one after another, each finishing before the next
// starts (`random N` sends its N requests concurrently), and stops at exit
// or quit. It is the engine of -c and of piped input. It returns how many
// requests failed.
func RunCommands(ctx context.Context, cl *client.Client, cmds []string, out io.Writer) (failed int) {
	return RunCommandsWith(ctx, cl, cmds, Config{Out: out})
}

// RunCommandsWith is RunCommands with the settings of cfg (Concurrency,
// Quiet, Seed); output goes to cfg.Out.
func RunCommandsWith(ctx context.Context, cl *client.Client, cmds []string, cfg Config) (failed int) {
	out := cfg.Out
	if out == nil {
		out = os.Stdout
	}
	s := newSession(cl, cfg, out)
	var stop func()
	s.calls, stop = afterGrace(ctx, cfg.Grace)
	defer stop()
	for _, c := range cmds {
		if ctx.Err() != nil || s.exec(ctx, c) {
			break
		}
	}
	return int(s.failed.Load())
}

// session is the state shared by the commands of one Run.
type session struct {
	cl       *client.Client
	out      *lineWriter
	pal      palette
	progress progress // random runs going, for the progress line
	conc     int
	quiet    bool
	seed     uint64
	runs     atomic.Uint64 // `random` runs so far: each gets its own stream
	failed   atomic.Int64
	full     bool                   // print results whole
	grace    time.Duration          // Config.Grace
	calls    context.Context        // requests run under it: afterGrace
	last     atomic.Pointer[string] // the last result, whole, for `last`

	// Interactive only: commands run in the background.
	background bool
	sem        chan struct{}  // bounds single requests in flight
	wg         sync.WaitGroup // background commands still running
	inflight   atomic.Int64   // requests in flight, for the goodbye line
	stop       chan struct{}  // closed when leaving: random stops sending
	stopOnce   sync.Once
}

func newSession(cl *client.Client, cfg Config, out io.Writer) *session {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = defaultConcurrency
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	s := &session{
		cl:    cl,
		out:   &lineWriter{w: out},
		pal:   palette{on: cfg.Color},
		conc:  cfg.Concurrency,
		quiet: cfg.Quiet,
		seed:  cfg.Seed,
		full:  cfg.Full,
		grace: cfg.Grace,
		calls: context.Background(),
		stop:  make(chan struct{}),
	}
	if cfg.Progress {
		s.progress.show = func(line string) { s.out.setStatus(s.pal.dim(line)) }
	}
	return s
}

// leave stops random runs from sending more; requests already sent finish.
func (s *session) leave() { s.stopOnce.Do(func() { close(s.stop) }) }

// readLines runs the lines of r in order until exit, EOF or ctx ends. Lines
// are read in their own goroutine so that a cancelled ctx is noticed even
// while the reader blocks; that goroutine ends at the next line or EOF.
func (s *session) readLines(ctx context.Context, r io.Reader) error {
	type line struct {
		text string
		err  error
	}
	lines := make(chan line)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), maxLine)
		for sc.Scan() {
			select {
			case lines <- line{text: sc.Text()}:
			case <-done:
				return
			}
		}
		if err := sc.Err(); err != nil {
			select {
			case lines <- line{err: err}:
			case <-done:
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			if l.err != nil {
				return fmt.Errorf("repl: read input: %w", l.err)
			}
			if s.exec(ctx, l.text) {
				return nil
			}
		}
	}
}

// exec runs one input line and reports whether it asked to leave. In the
// background mode, requests, random and status return at once and finish
// in their own goroutine.
func (s *session) exec(ctx context.Context, line string) (exit bool) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return false
	}
	fields := strings.Fields(line)
	switch strings.ToLower(fields[0]) {
	case "exit", "quit":
		if len(fields) == 1 {
			return true
		}
	case "help":
		if len(fields) == 1 {
			s.out.print(helpText())
			return false
		}
	case "last":
		if len(fields) == 1 {
			s.printLast()
			return false
		}
	case "status":
		if len(fields) == 1 {
			s.run(func() { s.status(ctx) })
			return false
		}
	case "random":
		n, quiet, err := parseRandom(fields[1:])
		if err != nil {
			s.out.print("random: " + err.Error())
			return false
		}
		s.run(func() { s.random(ctx, n, quiet || s.quiet) })
		return false
	}
	if s.background {
		// Wait for a slot here rather than in the goroutine, so that a
		// flood of typed requests cannot pile up goroutines.
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		s.run(func() {
			defer func() { <-s.sem }()
			s.request(ctx, line)
		})
		return false
	}
	s.request(ctx, line)
	return false
}

// run runs f in the background in interactive mode, else right away.
func (s *session) run(f func()) {
	if !s.background {
		f()
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

func parseRandom(args []string) (n int, quiet bool, err error) {
	var rest []string
	for _, a := range args {
		if a == "-q" || a == "--quiet" {
			quiet = true
			continue
		}
		rest = append(rest, a)
	}
	if len(rest) != 1 {
		return 0, false, errors.New("usage: random N [-q]")
	}
	n, err = strconv.Atoi(rest[0])
	if err != nil || n < 1 || n > maxRandom {
		return 0, false, fmt.Errorf("N must be a whole number from 1 to %d, got %q", maxRandom, rest[0])
	}
	return n, quiet, nil
}

// do sends one request and counts it if it failed.
func (s *session) do(ctx context.Context, cmd string) (*client.Result, time.Duration, error) {
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	start := time.Now()
	// The session's calls context, not ctx: a request in flight when ctx
	// ends still gets its reply, within the grace.
	r, err := s.cl.Do(s.calls, cmd)
	lat := time.Since(start)
	if r != nil {
		lat = r.Latency
	}
	if err != nil {
		s.failed.Add(1)
		if errors.Is(context.Cause(s.calls), errStopped) && errors.Is(err, context.Canceled) {
			err = stoppedError(s.grace)
		}
	} else {
		res := r.ResultString()
		s.last.Store(&res)
	}
	return r, lat, err
}

func (s *session) request(ctx context.Context, cmd string) {
	r, lat, err := s.do(ctx, cmd)
	s.out.print(s.pal.replyCut(cmd, r, lat, err, !s.full))
}

// printLast prints the last result whole.
func (s *session) printLast() {
	if p := s.last.Load(); p != nil {
		s.out.print(safe(*p))
		return
	}
	s.out.print("no result yet")
}

func (s *session) status(ctx context.Context) {
	st, err := s.cl.Status(ctx, 0)
	if err != nil {
		s.failed.Add(1)
		s.out.print(s.pal.err(formatError("status", err)))
		return
	}
	var b strings.Builder
	PrintStatus(&b, st, time.Now())
	s.out.print(b.String())
}
