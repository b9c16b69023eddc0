package supervise

import (
	"strings"
	"testing"
	"time"
)

func TestReadMemory(t *testing.T) {
	p := start(t, "exec sleep 60")
	for _, pid := range []int{0, p.PID()} {
		rss, peak, err := ReadMemory(pid)
		if err != nil || rss <= 0 || peak < rss {
			t.Errorf("ReadMemory(%d) = %d, %d, %v; want a resident set and a peak at least as large", pid, rss, peak, err)
		}
	}
	p.Stop(0)
	if _, _, err := ReadMemory(p.PID()); err == nil {
		t.Errorf("ReadMemory of a reaped process = nil error; want one")
	}
}

func TestCPUTime(t *testing.T) {
	p := start(t, "while :; do :; done")
	first, err := CPUTime(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	// A busy loop uses CPU time; wait until the kernel has counted a tick.
	waitCPU := func(pid int, over time.Duration) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			d, err := CPUTime(pid)
			if err != nil {
				t.Fatal(err)
			}
			if d > over {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("CPUTime(%d) = %v after 10s; want more than %v", pid, d, over)
			}
			time.Sleep(10 * time.Millisecond) // the polling pace
		}
	}
	waitCPU(p.PID(), first)
	self, err := CPUTime(0)
	if err != nil || self <= 0 {
		t.Errorf("CPUTime(0) = %v, %v; want this process's CPU time", self, err)
	}
}

func TestParseStatCPU(t *testing.T) {
	for _, c := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "42 (bilancia) S 1 42 42 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 8 0 100 0 0", 1750 * time.Millisecond, true},
		{"spaces and parens in the name", "42 (a ) b) R 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 8 0 100 0 0", 100 * time.Millisecond, true},
		{"no parens", "42 bilancia S 1", 0, false},
		{"short", "42 (x) S 1 2 3", 0, false},
		{"not a number", "42 (x) S 1 42 42 0 -1 4194560 100 0 0 0 x 25 0", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseStatCPU(42, c.stat)
			if got != c.want || (err == nil) != c.ok {
				t.Errorf("parseStatCPU(%q) = %v, %v; want %v, ok %v", c.stat, got, err, c.want, c.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "/proc/42/stat") {
				t.Errorf("error %q; want it to name the file", err)
			}
		})
	}
}
