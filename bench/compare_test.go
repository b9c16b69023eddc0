package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

var build struct {
	once sync.Once
	dir  string
	exe  string
	err  error
	out  []byte
}

// TestMain removes the binary built for the Compare tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// buildBilancia builds the bilancia binary for Compare to start, once.
func buildBilancia(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "bilancia-bench-test-")
		if build.err != nil {
			return
		}
		build.exe = filepath.Join(build.dir, "bilancia")
		build.out, build.err = exec.Command("go", "build", "-o", build.exe, "github.com/bilancia/bilancia/cmd/bilancia").CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build: %v\n%s", build.err, build.out)
	}
	return build.exe
}

// pids collects the children's pids from Compare's events.
type pids struct {
	mu   sync.Mutex
	list []int
}

var startedRE = regexp.MustCompile(`^started .* \(pid (\d+)\)`)

func (p *pids) event(msg string) {
	if m := startedRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		p.mu.Lock()
		p.list = append(p.list, n)
		p.mu.Unlock()
	}
}

// checkGone checks that every child has exited and been reaped.
func (p *pids) checkGone(t *testing.T, want int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.list) != want {
		t.Errorf("%d children started; want %d", len(p.list), want)
	}
	for _, pid := range p.list {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("child %d still exists after Compare (kill 0: %v)", pid, err)
		}
	}
}

func TestCompare(t *testing.T) {
	exe := buildBilancia(t)
	var p pids
	rep, err := Compare(context.Background(), CompareConfig{
		Exe:          exe,
		Load:         Config{Requests: 200, Clients: 2, Mix: MustParseMix("add:9,sleep 1:1")},
		Levels:       []int{1, 8},
		Rounds:       2,
		Strategies:   []string{"round-robin", "least-inflight"},
		WorkerDelays: []time.Duration{0, 0, time.Millisecond},
		InBroker:     true,
		Event:        p.event,
	})
	if err != nil {
		t.Fatalf("Compare = %v", err)
	}
	// A broker, 3 workers, and a dispatcher per strategy switch.
	if len(p.list) < 6 {
		t.Errorf("%d children started; want at least 6", len(p.list))
	}
	p.checkGone(t, len(p.list))
	if len(rep.Levels) != 2 {
		t.Fatalf("%d levels; want 2", len(rep.Levels))
	}
	for _, l := range rep.Levels {
		if len(l.Runs) != 2*4 {
			t.Errorf("level %d: %d runs; want 2 rounds × 4 targets", l.Concurrency, len(l.Runs))
		}
		for _, r := range l.Runs {
			var sum uint64
			for _, n := range r.Report.Workers {
				sum += n
			}
			if runtime.GOOS == "linux" && (r.CPU["total"] <= 0 || r.CPU["bench"] <= 0 || r.Cores <= 0) {
				t.Errorf("level %d round %d %s: CPU %v, cores %v; want CPU times", l.Concurrency, r.Round, r.Target, r.CPU, r.Cores)
			}
			if r.Report.OK != 200 || r.Report.Errors != 0 || sum != 200 || len(r.Report.Workers) != 3 {
				t.Errorf("level %d round %d %s: ok %d, errors %d, workers %v; want 200 ok from 3 workers",
					l.Concurrency, r.Round, r.Target, r.Report.OK, r.Report.Errors, r.Report.Workers)
			}
		}
		if len(l.Medians) != 4 || len(l.Ratios) != 3 || len(l.Memory) != 3 {
			t.Errorf("level %d: %d medians, %d ratios, %d memory readings; want 4, 3, 3",
				l.Concurrency, len(l.Medians), len(l.Ratios), len(l.Memory))
		}
		for _, m := range l.Memory {
			if m.Err == "" && (m.RSSKiB <= 0 || m.PeakKiB < m.RSSKiB) {
				t.Errorf("memory %+v; want a resident set and a peak at least as large", m)
			}
		}
		inBroker := false
		for _, ra := range l.Ratios {
			if len(ra.Rounds) != 2 || ra.Median.Throughput <= 0 {
				t.Errorf("ratio %+v; want 2 rounds and a median", ra)
			}
			inBroker = inBroker || ra.Target == InBrokerTarget("round-robin")
		}
		if !inBroker {
			t.Errorf("level %d: no ratio for the dispatcher in the broker", l.Concurrency)
		}
	}
}

// TestCompareAuth: with Auth every child runs with its credential, the load
// goes through the dispatcher as a client and to the queue group as the
// admin, and both paths are answered in full.
func TestCompareAuth(t *testing.T) {
	exe := buildBilancia(t)
	var p pids
	rep, err := Compare(context.Background(), CompareConfig{
		Exe: exe, Load: Config{Requests: 100, Clients: 2}, Levels: []int{8}, Rounds: 1, Auth: true, Event: p.event,
	})
	if err != nil {
		t.Fatalf("Compare = %v", err)
	}
	p.checkGone(t, len(p.list))
	if !rep.Auth || len(rep.Levels) != 1 || len(rep.Levels[0].Runs) != 2 {
		t.Fatalf("report auth %v, levels %+v; want one level of 2 runs with auth", rep.Auth, rep.Levels)
	}
	for _, r := range rep.Levels[0].Runs {
		if r.Report.OK != 100 || r.Report.Errors != 0 {
			t.Errorf("%s: ok %d, errors %d; want 100 ok", r.Target, r.Report.OK, r.Report.Errors)
		}
	}
	if _, err := Compare(context.Background(), CompareConfig{Exe: exe, Auth: true, InBroker: true}); !errors.Is(err, ErrConfig) {
		t.Fatalf("Compare with Auth and InBroker = %v; want %v", err, ErrConfig)
	}
}

// Cancelling mid-run (Ctrl-C) stops every child.
func TestCompareCancel(t *testing.T) {
	exe := buildBilancia(t)
	var p pids
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Compare(ctx, CompareConfig{
		Exe:  exe,
		Load: Config{Duration: time.Minute, Concurrency: 4},
		Progress: func(string) func(Progress) {
			return func(pr Progress) {
				if pr.Done > 100 {
					cancel()
				}
			}
		},
		Event: p.event,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Compare = %v; want context.Canceled", err)
	}
	if rep == nil || len(rep.Levels) != 1 || len(rep.Levels[0].Runs) != 1 {
		t.Errorf("report %+v; want the one run cut short", rep)
	}
	p.checkGone(t, 5)
}

// A child that cannot start is reported with its output.
func TestCompareChildFails(t *testing.T) {
	exe := buildBilancia(t)
	var p pids
	_, err := Compare(context.Background(), CompareConfig{
		Exe: exe, Load: Config{Requests: 10}, Strategies: []string{"no-such-strategy"}, Event: p.event,
	})
	if err == nil || !regexp.MustCompile(`(?s)dispatcher bd-1 exited early.*no-such-strategy`).MatchString(err.Error()) {
		t.Errorf("Compare = %v; want the dispatcher's exit with its output", err)
	}
	p.checkGone(t, 5)
}
