package bench

import (
	"sync"
	"time"

	"github.com/bilancia/bilancia/internal/supervise"
)

// cpuWindow holds the CPU times of every process at the start and the end
// of a run's measurement.
type cpuWindow struct {
	mu         sync.Mutex
	start, end map[string]time.Duration
	t0, t1     time.Time
}

func (w *cpuWindow) mark(c *cluster, end bool) {
	s, now := c.cpuSample(), time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if end {
		w.end, w.t1 = s, now
	} else {
		w.start, w.t0 = s, now
	}
}

// perRequest returns each role's CPU time per request in µs, and the cores
// kept busy; nil if unknown.
func (w *cpuWindow) perRequest(n uint64) (map[string]float64, float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wall := w.t1.Sub(w.t0)
	if w.start == nil || w.end == nil || n == 0 || wall <= 0 {
		return nil, 0
	}
	out := map[string]float64{}
	var total time.Duration
	for role, a := range w.start {
		b, ok := w.end[role]
		if !ok {
			continue
		}
		total += b - a
		out[role] = float64((b - a).Microseconds()) / float64(n)
	}
	out["total"] = float64(total.Microseconds()) / float64(n)
	return out, total.Seconds() / wall.Seconds()
}

// cpuSample reads the CPU time used so far by each role (Linux only: none
// elsewhere).
func (c *cluster) cpuSample() map[string]time.Duration {
	s := map[string]time.Duration{}
	add := func(role string, pid int) {
		if d, err := supervise.CPUTime(pid); err == nil {
			s[role] += d
		}
	}
	add("bench", 0)
	add("broker", c.broker.PID())
	if c.disp != nil {
		add("dispatcher", c.disp.PID())
	}
	for _, w := range c.workerList() {
		add("workers", w.PID())
	}
	return s
}

// processMemory reads a child's memory for target.
func processMemory(target string, p *supervise.Process) Memory {
	m := Memory{Target: target, PID: p.PID()}
	var err error
	m.RSSKiB, m.PeakKiB, err = ReadMemory(m.PID)
	if err != nil {
		m.Err = err.Error()
	}
	return m
}

// ReadMemory returns a process's resident set (VmRSS) and its peak (VmHWM)
// in KiB, from /proc/<pid>/status (Linux only). It is supervise.ReadMemory,
// which the children's supervisor owns.
func ReadMemory(pid int) (rss, peak int64, err error) { return supervise.ReadMemory(pid) }
