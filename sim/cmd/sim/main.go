// Command sim runs Bilancia's deterministic simulator over many seeds, or
// replays one with its trace.
//
//	sim --seeds 10000          run seeds 1..10000 over every core
//	sim --seed 42 --trace      replay seed 42, every event, its hash last
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/bilancia/bilancia/sim"
)

func main() {
	seeds := flag.Uint64("seeds", 100, "how many seeds to run")
	from := flag.Uint64("from", 1, "the first seed of --seeds")
	seed := flag.Uint64("seed", 0, "replay this seed alone")
	trace := flag.Bool("trace", false, "with --seed: print every event of the run, and its hash last")
	par := flag.Int("parallel", runtime.GOMAXPROCS(0), "seeds run at once")
	show := flag.Int("show", 3, "failures reported in full; the others by seed")
	bug := flag.String("bug", "", "put a past bug back into the core: "+sim.BugNames())
	flag.Parse()

	bugs, err := sim.ParseBug(*bug)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	if *seed != 0 {
		os.Exit(replay(out, *seed, *trace, bugs))
	}
	os.Exit(hunt(out, *from, *seeds, *par, *show, bugs))
}

func replay(out *bufio.Writer, seed uint64, trace bool, bugs sim.Bugs) int {
	opt := sim.Options{Bugs: bugs}
	if trace {
		opt.Trace = out
	}
	r := sim.Run(seed, opt)
	if r.Failed() {
		r.Report(out)
	}
	r.Stats.Print(out)
	fmt.Fprintf(out, "trace: %d lines, hash %s\n", r.TraceLines, r.TraceHash)
	fmt.Fprintf(out, "sim: 1 seeds, %d failures\n", b2i(r.Failed()))
	out.Flush()
	return b2i(r.Failed())
}

func hunt(out *bufio.Writer, from, n uint64, par, show int, bugs sim.Bugs) int {
	start := time.Now()
	next := make(chan uint64)
	results := make(chan *sim.Result, par)
	var wg sync.WaitGroup
	for i := 0; i < max(par, 1); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range next {
				results <- sim.Run(s, sim.Options{Fast: true, Bugs: bugs})
			}
		}()
	}
	go func() {
		for s := from; s < from+n; s++ {
			next <- s
		}
		close(next)
		wg.Wait()
		close(results)
	}()
	var total sim.Stats
	var failed []uint64
	first := map[uint64]string{}
	for r := range results {
		total.Add(&r.Stats)
		if r.Failed() {
			failed = append(failed, r.Seed)
			first[r.Seed] = r.Failures[0]
		}
	}
	sortSeeds(failed)
	for i, s := range failed {
		if i >= show {
			fmt.Fprintf(out, "FAIL seed %d: %s\n", s, first[s])
			continue
		}
		// Replayed with its trace kept: the same run, now with its story.
		sim.Run(s, sim.Options{Bugs: bugs}).Report(out)
	}
	total.Print(out)
	fmt.Fprintf(out, "time: %v on %d cores\n", time.Since(start).Round(time.Millisecond), par)
	fmt.Fprintf(out, "sim: %d seeds, %d failures\n", n, len(failed))
	out.Flush()
	return b2i(len(failed) > 0)
}

func sortSeeds(s []uint64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
