// Package e2e tests Bilancia as its users run it: every role is a separate
// process of the real binary, talking through a real broker on loopback,
// killed for real with signals. Nothing is mocked.
//
// The default run (go test -race ./e2e/) holds the core scenarios; the fault
// matrix is behind the build tag chaos (scripts/chaos).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/supervise"
	"github.com/bilancia/bilancia/wire"
)

// bin is the bilancia binary built once for the whole run by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bilancia-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "bilancia")
	build := exec.Command("go", "build", "-o", bin, "github.com/bilancia/bilancia/cmd/bilancia")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build bilancia:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one process of the binary, run by the supervisor bench
// --compare uses too: its own process group, killed by the kernel if the
// test binary dies, and an environment without BILANCIA_* and NATS_*
// variables, which would configure it behind the test's back.
type proc struct {
	name string
	sp   *supervise.Process
	out  string // stdout and stderr
	log  string // a dispatcher's JSON log; "" for other roles
}

// env starts processes for one test and kills what is left at its end.
type env struct {
	t   testing.TB
	dir string

	mu    sync.Mutex
	procs []*proc
	seq   int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	if os.Getenv("E2E_KEEP") != "" {
		// Keep every output and log for a post-mortem.
		dir, err := os.MkdirTemp("", "bilancia-e2e-keep-")
		if err != nil {
			t.Fatal(err)
		}
		e.dir = dir
		t.Logf("keeping outputs and logs in %s", dir)
	}
	t.Cleanup(e.cleanup)
	return e
}

// start runs the binary with args; stdin may be nil.
func (e *env) start(name string, stdin io.Reader, args ...string) *proc {
	e.t.Helper()
	return e.launch(supervise.Config{Name: name, Args: args, Stdin: stdin})
}

// launch runs the binary as c says, its output in the test's directory.
func (e *env) launch(c supervise.Config) *proc {
	e.t.Helper()
	e.mu.Lock()
	e.seq++
	out := filepath.Join(e.dir, fmt.Sprintf("%02d-%s.out", e.seq, c.Name))
	e.mu.Unlock()
	c.Path, c.Output, c.Dir = bin, out, e.dir
	sp, err := supervise.Start(c)
	if err != nil {
		e.t.Fatal(err)
	}
	p := &proc{name: c.Name, sp: sp, out: out}
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p
}

func (e *env) cleanup() {
	e.mu.Lock()
	procs := append([]*proc(nil), e.procs...)
	e.mu.Unlock()
	// Clients, workers and dispatchers first, brokers last, so that nobody
	// spends its exit reconnecting.
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		if !p.exited() {
			_ = p.sp.Signal(syscall.SIGKILL)
		}
	}
	for _, p := range procs {
		if _, err := p.sp.Wait(10 * time.Second); err != nil {
			e.t.Errorf("%s (pid %d) did not die after SIGKILL", p.name, p.pid())
		}
	}
	if e.t.Failed() || testing.Verbose() && os.Getenv("E2E_DUMP") != "" {
		for _, p := range procs {
			e.t.Logf("---- %s (%s): %s\n%s", p.name, p.exitString(), p.out, tail(readFile(p.out), 40))
			if p.log != "" {
				e.t.Logf("---- %s log without request lines: %s\n%s", p.name, p.log, tail(eventLines(p.log), 60))
			}
		}
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// eventLines is a dispatcher log without its request lines.
func eventLines(path string) string {
	var b strings.Builder
	for _, l := range readLog(path) {
		if l.Msg != "request" {
			b.WriteString(l.raw)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (p *proc) pid() int { return p.sp.PID() }

func (p *proc) exited() bool { return p.sp.Exited() }

func (p *proc) exitString() string {
	if !p.exited() {
		return "running"
	}
	return p.sp.State().String()
}

// signal sends sig to the process (its process group: the process alone,
// as it starts none); it fails the test if that is impossible.
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.sp.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// kill SIGKILLs the process and waits until it is gone.
func (p *proc) kill(t testing.TB) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
	if _, err := p.wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when a
// signal ended it).
func (p *proc) wait(timeout time.Duration) (int, error) { return p.sp.Wait(timeout) }

// output is what the process printed so far.
func (p *proc) output() string { return readFile(p.out) }

var brokerLine = regexp.MustCompile(`broker listening on (nats://[^,\s]+)(?:, routes on ([^,\s]+))?(?:, monitoring on ([^,\s]+))?\n`)

// broker is a running `bilancia broker`.
type broker struct {
	*proc
	URL, RouteURL, MonitorURL string
}

// broker starts `bilancia broker` on a random port and waits until it
// listens. extra are more flags (cluster).
func (e *env) broker(name string, extra ...string) *broker {
	e.t.Helper()
	args := append([]string{"broker", "--port=-1"}, extra...)
	p := e.start(name, nil, args...)
	b := &broker{proc: p}
	err := supervise.Poll(context.Background(), name, 20*time.Second, 10*time.Millisecond, func() error {
		m := brokerLine.FindStringSubmatch(p.output())
		if m == nil {
			return errors.New("not listening yet")
		}
		b.URL, b.RouteURL, b.MonitorURL = m[1], m[2], m[3]
		return nil
	}, p.sp)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// brokerDispatcher starts `bilancia broker --dispatcher`: a broker with
// the dispatcher id inside, with a log in the test's directory and 200ms
// heartbeats; extra flags (cluster, dispatcher) come last and win. The
// broker's proc carries the dispatcher's log.
func (e *env) brokerDispatcher(name, id string, extra ...string) *broker {
	e.t.Helper()
	log := filepath.Join(e.dir, id+".log")
	b := e.broker(name, append([]string{"--dispatcher", "--id=" + id, "--log=" + log, "--heartbeat=200ms"}, extra...)...)
	b.log = log
	return b
}

// dispatcher starts `bilancia dispatcher` with id, a log in the test's
// directory and 200ms heartbeats; extra flags come last and win.
func (e *env) dispatcher(url, id string, extra ...string) *proc {
	e.t.Helper()
	log := filepath.Join(e.dir, id+".log")
	args := append([]string{"dispatcher", "--nats", url, "--id", id, "--log", log, "--heartbeat", "200ms", "--connect-wait=10s"}, extra...)
	p := e.start(id, nil, args...)
	p.log = log
	return p
}

// worker starts `bilancia worker` with id and 200ms heartbeats.
func (e *env) worker(url, id string, extra ...string) *proc {
	e.t.Helper()
	args := append([]string{"worker", "--nats", url, "--id", id, "--heartbeat", "200ms", "--connect-wait=10s"}, extra...)
	return e.start(id, nil, args...)
}

// run runs the binary to completion within timeout and returns its exit
// code, stdout and stderr. Unlike start it keeps stdout and stderr apart
// (status --json prints its JSON on stdout), so it runs the command itself,
// with the supervisor's environment.
func (e *env) run(timeout time.Duration, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = supervise.Env()
	cmd.Dir = e.dir
	cmd.Stdin = stdin
	var o, s bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &s
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("bilancia %s: still running after %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, o.String(), s.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		e.t.Fatalf("bilancia %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), o.String(), s.String()
}

// status runs `bilancia status --json`.
func (e *env) status(url string) ([]wire.Status, error) {
	e.t.Helper()
	code, out, errOut := e.run(20*time.Second, nil, "status", "--nats", url, "--json")
	if code != 0 {
		return nil, fmt.Errorf("bilancia status: exit %d: %s", code, strings.TrimSpace(errOut))
	}
	var st []wire.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("bilancia status: %v in %q", err, out)
	}
	return st, nil
}

// upWorkers checks that each of n dispatchers sees exactly the workers ids
// up.
func upWorkers(st []wire.Status, dispatchers int, ids ...string) error {
	if len(st) != dispatchers {
		return fmt.Errorf("%d dispatcher(s) answered, want %d", len(st), dispatchers)
	}
	for _, s := range st {
		up := map[string]bool{}
		for _, w := range s.Workers {
			if w.State == wire.StateUp {
				up[w.ID] = true
			}
		}
		for _, id := range ids {
			if !up[id] {
				return fmt.Errorf("dispatcher %s: worker %s not up (workers: %+v)", s.Dispatcher, id, s.Workers)
			}
		}
	}
	return nil
}

// logLine is one line of a dispatcher's JSON log.
type logLine struct {
	Time   time.Time `json:"time"`
	Msg    string    `json:"msg"`
	Worker string    `json:"worker"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Reason string    `json:"reason"`
	// request lines
	ID        string  `json:"id"`
	Client    string  `json:"client"`
	Command   string  `json:"command"`
	Attempts  int     `json:"attempts"`
	Status    int     `json:"status"`
	LatencyMS float64 `json:"latency_ms"`

	raw string
}

// start is when a request line's request arrived at the dispatcher.
func (l logLine) start() time.Time {
	return l.Time.Add(-time.Duration(l.LatencyMS * float64(time.Millisecond)))
}

// readLog parses a dispatcher's log; a last line still being written is
// skipped.
func readLog(path string) []logLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		l.raw = sc.Text()
		out = append(out, l)
	}
	return out
}

// requests is the request lines of a log.
func requests(lines []logLine) []logLine {
	var out []logLine
	for _, l := range lines {
		if l.Msg == "request" {
			out = append(out, l)
		}
	}
	return out
}

// event finds the first line with msg for worker at or after since.
func event(lines []logLine, msg, worker string, since time.Time) (logLine, bool) {
	for _, l := range lines {
		if l.Msg == msg && l.Worker == worker && !l.Time.Before(since) {
			return l, true
		}
	}
	return logLine{}, false
}

var textTime = regexp.MustCompile(`^time=(\S+)`)

// textEvent finds the first line of a process's text log (slog text) that
// contains msg at or after since, and returns its time.
func textEvent(out, msg string, since time.Time) (time.Time, bool) {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		m := textTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || at.Before(since.Truncate(time.Millisecond)) {
			continue
		}
		return at, true
	}
	return time.Time{}, false
}
