package bench

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestApplyScenario(t *testing.T) {
	load := Config{Duration: 9 * time.Second}
	tests := []struct {
		name  string
		check func(cc CompareConfig) bool
	}{
		{ScenarioHealthy, func(cc CompareConfig) bool { return cc.Workers == 3 && !cc.disturbs() && cc.WorkerDelays == nil }},
		{ScenarioSlow, func(cc CompareConfig) bool {
			return slices.Equal(cc.WorkerDelays, []time.Duration{0, 0, 100 * time.Millisecond})
		}},
		{ScenarioHung, func(cc CompareConfig) bool { return cc.HangAfter == 3*time.Second && cc.HangFor == 3*time.Second }},
		{ScenarioFailing, func(cc CompareConfig) bool { return slices.Equal(cc.WorkerFailRates, []float64{0, 0, 1}) }},
		{ScenarioUnequal, func(cc CompareConfig) bool {
			return slices.Equal(cc.WorkerDelays, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond})
		}},
		{ScenarioRejoin, func(cc CompareConfig) bool { return cc.RestartAfter == 3*time.Second && cc.HangFor == 0 }},
	}
	for _, tt := range tests {
		cc := CompareConfig{Load: load}
		if err := cc.ApplyScenario(tt.name); err != nil || cc.Scenario != tt.name || !tt.check(cc) {
			t.Errorf("ApplyScenario(%s) = %v, %+v", tt.name, err, cc)
		}
	}
	cc := CompareConfig{HangFor: time.Second, HangAfter: 2 * time.Second, Load: load}
	if err := cc.ApplyScenario(ScenarioHung); err != nil || cc.HangFor != time.Second || cc.HangAfter != 2*time.Second {
		t.Errorf("ApplyScenario(hung) over a given stop = %v, %+v; want the stop kept", err, cc)
	}
	if err := (&CompareConfig{}).ApplyScenario("sunny"); !errors.Is(err, ErrConfig) {
		t.Errorf("ApplyScenario(sunny) = %v; want ErrConfig", err)
	}
	for _, bad := range []CompareConfig{
		{WorkerFailRates: []float64{0, 1.5}},
		{WorkerFailRates: []float64{0, 0, 0, 0}, Workers: 3},
		{HangFor: time.Second, RestartAfter: time.Second},
		{HangAfter: -time.Second},
	} {
		if err := bad.defaults(); !errors.Is(err, ErrConfig) {
			t.Errorf("defaults(%+v) = %v; want ErrConfig", bad, err)
		}
	}
}

// events collects Compare's events, and the children's pids.
type events struct {
	pids
	mu  sync.Mutex
	all []string
}

func (e *events) event(msg string) {
	e.pids.event(msg)
	e.mu.Lock()
	e.all = append(e.all, msg)
	e.mu.Unlock()
}

func (e *events) saw(prefix string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.ContainsFunc(e.all, func(m string) bool { return strings.HasPrefix(m, prefix) })
}

// A disturbed comparison stops or restarts the last worker in every run,
// reports the dispatcher's forwards per worker, and leaves no child
// behind, the restarted worker's new process included.
func TestCompareDisturbed(t *testing.T) {
	exe := buildBilancia(t)
	for _, tt := range []struct {
		name string
		cc   CompareConfig
		saw  []string
	}{
		{"failing and hung", CompareConfig{WorkerFailRates: []float64{0, 0, 1}, HangAfter: 200 * time.Millisecond, HangFor: 300 * time.Millisecond},
			[]string{"stopped worker bw-3 (SIGSTOP)", "continued worker bw-3"}},
		{"rejoin", CompareConfig{RestartAfter: 300 * time.Millisecond}, []string{"restarted worker bw-3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ev events
			cc := tt.cc
			cc.Exe, cc.Event, cc.Rounds, cc.Levels = exe, ev.event, 1, []int{8}
			cc.Load = Config{Duration: time.Second, Clients: 2}
			rep, err := Compare(context.Background(), cc)
			if err != nil {
				t.Fatalf("Compare = %v", err)
			}
			ev.checkGone(t, len(ev.list))
			for _, s := range tt.saw {
				if !ev.saw(s) {
					t.Errorf("no event %q in %q", s, ev.all)
				}
			}
			for _, r := range rep.Levels[0].Runs {
				if r.Target == DirectTarget {
					continue
				}
				if r.Report.Errors != 0 || r.Forwards["bw-1"] == 0 {
					t.Errorf("%s: %d errors, forwards %v; want none, and forwards per worker", r.Target, r.Report.Errors, r.Forwards)
				}
				if cc.RestartAfter > 0 && len(r.Report.WorkersBySecond["bw-1"]) == 0 {
					t.Errorf("%s: no replies by second after a restart", r.Target)
				}
			}
			var b strings.Builder
			if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "bw-3's share") {
				t.Errorf("report without bw-3's share:\n%s", b.String())
			}
		})
	}
}
