// Package supervise runs child processes of the bilancia binary for the
// programs that stand a system up from separate processes: bench --compare
// and the end-to-end tests. It starts a process with its output collected
// in a file and an environment that cannot configure it behind its
// arguments' back, waits until a condition holds while watching that the
// children still run, signals them, stops them (SIGTERM, then SIGKILL
// after a grace) and reports how they ended with the tail of their output.
// It also reads a process's memory and CPU time from /proc.
//
// Every child runs in a process group of its own, so that a Ctrl-C on the
// caller does not reach it twice and a signal reaches it and anything it
// starts; on Linux the kernel kills it if the caller dies without stopping
// it.
//
// Errors about a child name it ("worker w-1 exited early ...") and carry no
// package prefix, so that they read as part of the caller's message; match
// them with errors.Is against the sentinels below.
package supervise

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Errors about children.
var (
	// ErrExited reports a process that has exited: it was expected to run,
	// or a signal could not reach it.
	ErrExited = errors.New("supervise: process exited")
	// ErrRunning reports a process still running when Wait gave up.
	ErrRunning = errors.New("supervise: process still running")
	// ErrNotReady reports a condition Poll waited for in vain.
	ErrNotReady = errors.New("supervise: not ready")
	// ErrNoProc reports a reading of memory or CPU time on a system
	// without Linux's /proc.
	ErrNoProc = errors.New("supervise: memory and CPU time are only read on Linux")
)

// strippedPrefixes are the environment variables a child does not inherit:
// every flag of bilancia can be set as BILANCIA_<COMMAND>_<FLAG>, the
// connection flags as BILANCIA_<FLAG> and also NATS_URL, NATS_CREDS,
// NATS_USER, NATS_PASSWORD and NATS_TOKEN.
var strippedPrefixes = []string{"BILANCIA_", "NATS_"}

// Env returns the environment a child gets unless Config.Env says
// otherwise: this process's, without the BILANCIA_* and NATS_* variables.
// A child is then configured by its arguments alone, and runs what its
// caller wrote whatever the caller's shell holds: bench --compare's
// children the flags of a comparison (request logging on, default
// timeouts, its own broker without credentials), a test's children the
// scenario's flags. Everything else (PATH, HOME, GOMAXPROCS, GOCOVERDIR,
// TMPDIR) passes.
func Env() []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range strippedPrefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

// Config describes a child process.
type Config struct {
	// Name names the process in errors ("worker w-1"); "" = the base name
	// of Path.
	Name string
	// Path is the executable; Args are its arguments, without the program
	// name.
	Path string
	Args []string
	// Output is the file that receives the child's stdout and stderr,
	// created or truncated; "" = discarded.
	Output string
	// Dir is the child's working directory; "" = this process's.
	Dir string
	// Stdin is the child's standard input; nil = none (the null device).
	Stdin io.Reader
	// Env is the child's environment; nil = Env().
	Env []string
}

// Process is a running or exited child. Its methods are safe to call from
// several goroutines.
type Process struct {
	name   string
	output string
	cmd    *exec.Cmd

	done  chan struct{}    // closed when the process has exited and been reaped
	err   error            // cmd.Wait's error, once done is closed
	state *os.ProcessState // once done is closed
}

// Start starts a child as cfg says, in a process group of its own.
func Start(cfg Config) (*Process, error) {
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Path)
	}
	if cfg.Env == nil {
		cfg.Env = Env()
	}
	out := cfg.Output
	if out == "" {
		out = os.DevNull
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	defer f.Close() // the child holds its own descriptor
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Env, cmd.Dir, cmd.Stdin = cfg.Env, cfg.Dir, cfg.Stdin
	cmd.Stdout, cmd.Stderr = f, f
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
	}
	p := &Process{name: cfg.Name, output: cfg.Output, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

// Name is the process's name, as in its errors.
func (p *Process) Name() string { return p.name }

// PID is the process's id (and its process group's).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Output is the file that holds what the process printed; "" if discarded.
func (p *Process) Output() string { return p.output }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// State is how the process ended; nil while it runs.
func (p *Process) State() *os.ProcessState {
	if !p.Exited() {
		return nil
	}
	return p.state
}

// Alive returns nil while the process runs. Once it has exited, it returns
// an error matching ErrExited that gives its exit status, its output file
// and the last lines of its output.
func (p *Process) Alive() error {
	if !p.Exited() {
		return nil
	}
	var tail string
	if lines := p.Tail(exitTailLines); len(lines) > 0 {
		tail = "\n  " + strings.Join(lines, "\n  ")
	}
	return &exitError{msg: fmt.Sprintf("%s exited early (%v); its output: %s%s", p.name, p.err, p.output, tail)}
}

// exitTailLines is how much of its output Alive shows of a process that
// exited: enough for a usage message or a panic's first frames.
const exitTailLines = 5

type exitError struct{ msg string }

func (e *exitError) Error() string        { return e.msg }
func (e *exitError) Is(target error) bool { return target == ErrExited }

// Signal sends sig to the process's group: the process, and any child of
// its own it has not put in another group. It returns an error matching
// ErrExited if the process has exited.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s (pid %d): %w", p.name, p.PID(), ErrExited)
	}
	return signalGroup(p.cmd, sig)
}

// Wait waits until the process has exited, for at most timeout (<= 0: as
// long as it takes), and returns its exit code: -1 when a signal ended
// it. When timeout passes first, it returns an error matching ErrRunning.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-p.done:
		return p.state.ExitCode(), nil
	case <-expired:
		return 0, &runningError{msg: fmt.Sprintf("%s (pid %d) still running after %v", p.name, p.PID(), timeout)}
	}
}

type runningError struct{ msg string }

func (e *runningError) Error() string        { return e.msg }
func (e *runningError) Is(target error) bool { return target == ErrRunning }

// Stop ends the process: SIGTERM to its group, SIGKILL if it is still
// running after grace (<= 0: SIGKILL at once), and waits until it has
// exited. A process that has already exited is left as it is.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	if grace > 0 {
		_ = signalGroup(p.cmd, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
			return
		case <-t.C:
		}
	}
	_ = signalGroup(p.cmd, syscall.SIGKILL)
	<-p.done
}

// Tail returns the last n lines the process printed so far; nil if its
// output is discarded or cannot be read.
func (p *Process) Tail(n int) []string {
	if p.output == "" || n <= 0 {
		return nil
	}
	f, err := os.Open(p.output)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}
