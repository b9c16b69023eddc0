//go:build unix

package supervise

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bilancia/bilancia/internal/testutil"
)

// start starts sh -c script with its output in the test's directory, and
// kills it at the end of the test.
func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start(Config{
		Name: "sh " + t.Name(), Path: "/bin/sh", Args: []string{"-c", script},
		Output: filepath.Join(t.TempDir(), "out"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(0) })
	return p
}

// waitOutput waits until the process has printed want.
func waitOutput(t *testing.T, p *Process, want string) {
	t.Helper()
	testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		b, _ := os.ReadFile(p.Output())
		if !strings.Contains(string(b), want) {
			return fmt.Errorf("output %q; want %q in it", b, want)
		}
		return nil
	})
}

// endedBy is the signal that ended p, or 0.
func endedBy(p *Process) syscall.Signal {
	ws, ok := p.State().Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0
	}
	return ws.Signal()
}

func TestEnv(t *testing.T) {
	t.Setenv("BILANCIA_DISPATCHER_MAX_INFLIGHT", "7")
	t.Setenv("NATS_URL", "nats://elsewhere:4222")
	t.Setenv("SUPERVISE_TEST_KEEP", "yes")
	env := Env()
	for _, kv := range env {
		if strings.HasPrefix(kv, "BILANCIA_") || strings.HasPrefix(kv, "NATS_") {
			t.Errorf("Env() holds %s; want no BILANCIA_ or NATS_ variable", kv)
		}
	}
	if !slices.Contains(env, "SUPERVISE_TEST_KEEP=yes") {
		t.Errorf("Env() lacks SUPERVISE_TEST_KEEP=yes")
	}

	// A child started without Config.Env gets Env().
	p := start(t, `echo "max=$BILANCIA_DISPATCHER_MAX_INFLIGHT url=$NATS_URL keep=$SUPERVISE_TEST_KEEP"`)
	if code, err := p.Wait(5 * time.Second); code != 0 || err != nil {
		t.Fatalf("Wait = %d, %v; want 0, nil", code, err)
	}
	if got, want := p.Tail(1), []string{"max= url= keep=yes"}; !slices.Equal(got, want) {
		t.Errorf("child printed %q; want %q", got, want)
	}
}

func TestOutputAndExit(t *testing.T) {
	p := start(t, `for i in 1 2 3 4 5 6 7; do echo "line $i"; done; echo "to stderr" >&2; exit 3`)
	code, err := p.Wait(5 * time.Second)
	if code != 3 || err != nil {
		t.Fatalf("Wait = %d, %v; want 3, nil", code, err)
	}
	if got, want := p.Tail(3), []string{"line 6", "line 7", "to stderr"}; !slices.Equal(got, want) {
		t.Errorf("Tail(3) = %q; want %q", got, want)
	}
	if got := p.Tail(100); len(got) != 8 {
		t.Errorf("Tail(100) = %q; want all 8 lines", got)
	}
	if !p.Exited() || p.State() == nil || p.State().ExitCode() != 3 {
		t.Errorf("Exited() = %v, State() = %v; want exited with status 3", p.Exited(), p.State())
	}
	err = p.Alive()
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Alive() = %v; want ErrExited", err)
	}
	for _, want := range []string{"exited early (exit status 3)", p.Output(), "\n  line 4\n", "\n  to stderr"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Alive() = %q; want %q in it", err, want)
		}
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, ErrExited) {
		t.Errorf("Signal after exit = %v; want ErrExited", err)
	}
}

func TestDiscardedOutput(t *testing.T) {
	p, err := Start(Config{Path: "/bin/sh", Args: []string{"-c", "echo hidden"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Name() != "sh" || p.Output() != "" || p.Tail(5) != nil {
		t.Errorf("Name() = %q, Output() = %q, Tail(5) = %q; want sh, no output", p.Name(), p.Output(), p.Tail(5))
	}
}

func TestStartFails(t *testing.T) {
	_, err := Start(Config{Name: "nothing", Path: filepath.Join(t.TempDir(), "no-such-program")})
	if err == nil || !strings.HasPrefix(err.Error(), "start nothing: ") {
		t.Errorf("Start = %v; want an error naming the process", err)
	}
}

func TestStdinAndDir(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(Config{
		Path: "/bin/sh", Args: []string{"-c", `read x; echo "$x in $(pwd)"`},
		Output: filepath.Join(dir, "out"), Dir: dir, Stdin: strings.NewReader("hello\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got := p.Tail(1); len(got) != 1 || (got[0] != "hello in "+dir && got[0] != "hello in "+real) {
		t.Errorf("child printed %q; want hello in %s", got, dir)
	}
}

func TestWaitTimeout(t *testing.T) {
	p := start(t, "exec sleep 60")
	_, err := p.Wait(20 * time.Millisecond)
	if !errors.Is(err, ErrRunning) || !strings.Contains(err.Error(), "still running after 20ms") {
		t.Errorf("Wait = %v; want ErrRunning", err)
	}
	if err := p.Alive(); err != nil {
		t.Errorf("Alive() = %v; want nil while it runs", err)
	}
	if p.State() != nil {
		t.Errorf("State() = %v; want nil while it runs", p.State())
	}
}

func TestSignal(t *testing.T) {
	p := start(t, "exec sleep 60")
	if runtime.GOOS == "linux" {
		state := func() byte {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(p.PID()) + "/stat")
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
				return s[i+2]
			}
			return 0
		}
		for _, c := range []struct {
			sig  syscall.Signal
			want byte
		}{{syscall.SIGSTOP, 'T'}, {syscall.SIGCONT, 'S'}} {
			if err := p.Signal(c.sig); err != nil {
				t.Fatalf("Signal(%v) = %v", c.sig, err)
			}
			testutil.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
				if s := state(); s != c.want {
					return fmt.Errorf("after %v the state is %q; want %q", c.sig, s, c.want)
				}
				return nil
			})
		}
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(5 * time.Second); code != -1 || err != nil {
		t.Fatalf("Wait = %d, %v; want -1 (a signal), nil", code, err)
	}
	if sig := endedBy(p); sig != syscall.SIGTERM {
		t.Errorf("ended by %v; want SIGTERM", sig)
	}
}

// Stop sends SIGTERM, and SIGKILL to a process that ignores it, to the
// whole group: a grandchild dies too.
func TestStop(t *testing.T) {
	for _, c := range []struct {
		name   string
		script string
		want   syscall.Signal
	}{
		{"stops on SIGTERM", `sleep 60 & echo "child $!"; wait`, syscall.SIGTERM},
		{"ignores SIGTERM", `trap "" TERM; sleep 60 & echo "child $!"; wait; wait`, syscall.SIGKILL},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, c.script)
			waitOutput(t, p, "child ")
			grandchild, err := strconv.Atoi(strings.TrimPrefix(p.Tail(1)[0], "child "))
			if err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			p.Stop(200 * time.Millisecond)
			if !p.Exited() {
				t.Fatal("Stop returned before the process exited")
			}
			if sig := endedBy(p); sig != c.want {
				t.Errorf("ended by %v after %v; want %v", sig, time.Since(begin), c.want)
			}
			testutil.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if gone(grandchild) {
					return nil
				}
				return fmt.Errorf("grandchild %d still runs", grandchild)
			})
		})
	}
}

// gone reports whether pid no longer runs: it does not exist, or it is a
// zombie nobody reaped yet (a container's init may never).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	if runtime.GOOS != "linux" {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// Stop is safe to call twice and from several goroutines at once.
func TestStopTwiceAndConcurrently(t *testing.T) {
	p := start(t, "exec sleep 60")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(time.Second) }()
	}
	wg.Wait()
	p.Stop(time.Second)
	if sig := endedBy(p); sig != syscall.SIGTERM {
		t.Errorf("ended by %v; want SIGTERM", sig)
	}
}

func TestPoll(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		p := start(t, "exec sleep 60")
		calls := 0
		err := Poll(context.Background(), "three calls", 5*time.Second, time.Millisecond, func() error {
			if calls++; calls < 3 {
				return errors.New("not yet")
			}
			return nil
		}, p)
		if err != nil || calls != 3 {
			t.Errorf("Poll = %v after %d calls; want nil after 3", err, calls)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		last := errors.New("still no")
		err := Poll(context.Background(), "the impossible", 30*time.Millisecond, 5*time.Millisecond, func() error { return last }, nil)
		if !errors.Is(err, ErrNotReady) || !errors.Is(err, last) {
			t.Fatalf("Poll = %v; want ErrNotReady wrapping the last error", err)
		}
		if want := "the impossible: not ready after 30ms: still no"; err.Error() != want {
			t.Errorf("Poll = %q; want %q", err, want)
		}
	})
	t.Run("child exits", func(t *testing.T) {
		ok := start(t, "exec sleep 60")
		bad := start(t, "echo 'bad flag --frob'; exit 2")
		begin := time.Now()
		err := Poll(context.Background(), "never", time.Minute, 5*time.Millisecond, func() error { return errors.New("no") }, ok, bad)
		if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "bad flag --frob") {
			t.Errorf("Poll = %v; want ErrExited with the child's output", err)
		}
		if d := time.Since(begin); d > 30*time.Second {
			t.Errorf("Poll took %v; want it to give up when the child exits", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := Poll(ctx, "never", time.Minute, time.Millisecond, func() error { return errors.New("no") })
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Poll = %v; want context.Canceled", err)
		}
	})
}
