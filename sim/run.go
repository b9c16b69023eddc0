package sim

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// Sim is one run: one seed, one goroutine.
type Sim struct {
	seed  uint64
	rng   *rand.Rand
	cfg   Config
	clock clock
	net   *network
	trace *trace
	quiet bool
	stats Stats
	check checker

	faults      *faults
	bugs        Bugs
	workers     []*worker
	dispatchers []*dispatcher
	clients     []*client
}

// Options are a run's settings beside its seed.
type Options struct {
	// Trace receives every line of the trace as it comes; nil: none is
	// written, and lines are kept only for a failure's story.
	Trace io.Writer
	// Bugs puts past bugs back into the core, to show the simulator finds them.
	Bugs Bugs
	// Fast skips the trace entirely (no hash, no story): a hunt replays a
	// failing seed with the trace on to tell its story.
	Fast bool
}

// Result is what a run found.
type Result struct {
	Seed       uint64
	Failures   []string // the violations, in order
	Story      []string // the trace's last lines before the first violation
	TraceHash  string
	TraceLines int
	Mix        string // the fault kinds enabled
	World      string // the roles and load drawn
	Stats      Stats
}

// Failed tells whether an invariant broke.
func (r *Result) Failed() bool { return len(r.Failures) > 0 }

// A failure's story: the last lines that name the request it is about,
// the last faults and changes of membership, and the last lines of all,
// in order.
const (
	storyOfRequest = 40
	storyScene     = 20
	storyLast      = 15
)

// story picks the lines that tell how the run came to v.
func (s *Sim) story(v string) []string {
	all := s.trace.last(ringLines)
	id := ""
	for _, f := range strings.Fields(v) {
		f = strings.TrimRight(f, ",.:;()")
		if len(f) > 1 && f[0] == 'c' && strings.Contains(f, "-") && strings.Trim(f[1:], "0123456789-") == "" {
			id = f
			break
		}
	}
	keep := make([]bool, len(all))
	for i := max(0, len(all)-storyLast); i < len(all); i++ {
		keep[i] = true
	}
	n := 0
	for i := len(all) - 1; i >= 0 && id != "" && n < storyOfRequest; i-- {
		if strings.Contains(all[i], ": progress ") {
			continue // every 100 ms while it is held: they would tell nothing else
		}
		if strings.Contains(all[i]+" ", " id="+id+" ") || strings.Contains(all[i], " "+id+" ") ||
			strings.Contains(all[i], ","+id+",") || strings.Contains(all[i]+" ", "ids="+id+" ") {
			keep[i] = true
			n++
		}
	}
	// And the last faults and changes of membership and holds: the scene.
	n = 0
	for i := len(all) - 1; i >= 0 && n < storyScene; i-- {
		l := all[i]
		if strings.Contains(l, " FAULT ") || strings.Contains(l, " HEAL ") || strings.Contains(l, " down (") ||
			strings.HasSuffix(l, " up") || strings.Contains(l, ": hold for") || strings.Contains(l, "quiet phase") {
			keep[i] = true
			n++
		}
	}
	var out []string
	for i, l := range all {
		if keep[i] {
			if i > 0 && !keep[i-1] && len(out) > 0 {
				out = append(out, "...")
			}
			out = append(out, l)
		}
	}
	return out
}

// Run runs seed and returns what it found.
func Run(seed uint64, opt Options) *Result {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s := &Sim{seed: seed, rng: rng, quiet: opt.Fast, bugs: opt.Bugs}
	s.trace = newTrace(opt.Trace)
	s.cfg = drawConfig(rng)
	s.check.s = s
	s.net = newNetwork(s, s.cfg.Brokers)
	s.faults = newFaults(s)
	for i := 1; i <= s.cfg.Workers; i++ {
		s.newWorker(i)
	}
	s.pace()
	for i := 1; i <= s.cfg.Dispatchers; i++ {
		s.newDispatcher(i)
	}
	for i := 1; i <= s.cfg.Clients; i++ {
		s.newClient(i)
	}
	res := &Result{Seed: seed, Mix: s.faults.mix()}
	res.World = fmt.Sprintf("brokers=%d dispatchers=%d workers=%d clients=%d requests<=%d long=%.1f hedge=%.1f",
		s.cfg.Brokers, s.cfg.Dispatchers, s.cfg.Workers, s.cfg.Clients, s.cfg.Requests, s.cfg.LongShare, s.cfg.HedgeAsk)
	s.tracef("seed %d: %s; faults: %s", seed, res.World, res.Mix)

	for _, w := range s.workers {
		w.start()
	}
	for _, d := range s.dispatchers {
		d.start()
	}
	// Clients start once the workers had time to beat: a cold start's
	// 503s are not what this run is about.
	for _, c := range s.clients {
		c.after(1500*Millisecond, c.start)
		c.connect()
	}
	s.faults.schedule()
	for s.clock.step(s.cfg.End) && len(s.check.fails) == 0 {
	}
	if len(s.check.fails) == 0 {
		s.clock.now = s.cfg.End
		s.check.atEnd()
	}
	s.stats.steps = s.clock.steps
	for _, d := range s.dispatchers {
		s.addCounts(d)
	}
	for _, v := range s.check.fails {
		res.Failures = append(res.Failures, fmt.Sprintf("%s %s", stamp(v.at), v.what))
	}
	if !s.quiet {
		if len(s.check.fails) > 0 {
			res.Story = s.story(s.check.fails[0].what)
		}
		res.TraceHash, res.TraceLines = s.trace.sum(), s.trace.n
	}
	res.Stats = s.stats
	return res
}

// pace sets the gap between a client's requests so that, all faults
// healed, the workers are busy a fraction of the time: this simulator
// looks for requests lost, not for the queues of a fleet overloaded.
func (s *Sim) pace() {
	// Round robin gives each worker its share, whatever its slots: the
	// worker with the fewest sets the pace.
	least := s.workers[0].conc
	for _, w := range s.workers {
		least = min(least, w.conc)
	}
	slots := least * len(s.workers)
	c := &s.cfg
	mean := func(sp span) float64 { return float64(sp.lo+sp.hi) / 2 }
	work := (1-c.LongShare)*mean(c.ShortWork) + c.LongShare*mean(c.LongWork)
	gap := Time(work * float64(c.Clients) / (c.Busy * float64(slots)))
	gap = max(gap, 20*Millisecond)
	c.Gap = span{gap / 2, gap * 3 / 2}
}

// addCounts adds a dispatcher core's own counters (of its last life).
func (s *Sim) addCounts(d *dispatcher) {
	if d.core == nil {
		return
	}
	n := d.core.Counts()
	s.stats.joined += n.Joined
	s.stats.orphansAnswered += n.OrphansAnswered + n.OrphansRelayed
	s.stats.retries += n.Retries
}

// Report writes a failed run's seed, its violations and the story that led there.
func (r *Result) Report(w io.Writer) {
	fmt.Fprintf(w, "FAIL seed %d (%s; faults: %s)\n", r.Seed, r.World, r.Mix)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if len(r.Story) > 0 {
		fmt.Fprintf(w, "  how it came to this (that request's events, the faults and membership, the last events):\n    %s\n", strings.Join(r.Story, "\n    "))
	}
	fmt.Fprintf(w, "  replay: scripts/sim --seed %d --trace\n", r.Seed)
}
