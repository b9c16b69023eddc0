package sim

import (
	"bytes"
	"strings"
	"testing"
)

// TestSeeds runs a modest number of seeds: every invariant holds in each.
func TestSeeds(t *testing.T) {
	n := uint64(200)
	if testing.Short() {
		n = 20
	}
	var total Stats
	for seed := uint64(1); seed <= n; seed++ {
		r := Run(seed, Options{Fast: true})
		total.Add(&r.Stats)
		if r.Failed() {
			var b strings.Builder
			Run(seed, Options{}).Report(&b) // again, with its story
			t.Errorf("%s", b.String())
		}
	}
	// A simulator that injects no fault tests nothing.
	for k, c := range total.faults {
		if c == 0 {
			t.Errorf("%d seeds injected no %s", n, FaultKind(k))
		}
	}
	if total.requests == 0 || total.resends == 0 || total.handOvers == 0 || total.holds == 0 {
		t.Errorf("%d seeds: requests %d, resends %d, hand-overs %d, holds %d; want each above 0",
			n, total.requests, total.resends, total.handOvers, total.holds)
	}
}

// TestTraceReplays: a seed's trace is the same, byte for byte, run to run,
// and its hash tells it; the hash is the same whether the lines are
// written or not.
func TestTraceReplays(t *testing.T) {
	for _, seed := range []uint64{3, 42} {
		var a, b bytes.Buffer
		ra := Run(seed, Options{Trace: &a})
		rb := Run(seed, Options{Trace: &b})
		rc := Run(seed, Options{})
		if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("seed %d: traces of %d and %d bytes differ", seed, a.Len(), b.Len())
		}
		if ra.TraceHash != rb.TraceHash || ra.TraceHash != rc.TraceHash || ra.TraceLines != strings.Count(a.String(), "\n") {
			t.Fatalf("seed %d: hashes %s, %s, %s over %d lines; want one hash over %d lines",
				seed, ra.TraceHash, rb.TraceHash, rc.TraceHash, ra.TraceLines, strings.Count(a.String(), "\n"))
		}
	}
	if Run(1, Options{}).TraceHash == Run(2, Options{}).TraceHash {
		t.Fatal("seeds 1 and 2 have one trace hash; want two")
	}
}

// TestBugsFound puts each past bug back into the core and finds it within
// a bounded hunt: the simulator bites.
func TestBugsFound(t *testing.T) {
	if testing.Short() {
		t.Skip("a hunt of up to 3000 seeds per bug")
	}
	for _, name := range bugNames {
		bugs, err := ParseBug(name)
		if err != nil {
			t.Fatal(err)
		}
		found := uint64(0)
		for seed := uint64(1); seed <= 3000 && found == 0; seed++ {
			if Run(seed, Options{Fast: true, Bugs: bugs}).Failed() {
				found = seed
			}
		}
		if found == 0 {
			t.Errorf("bug %s: no failure in 3000 seeds", name)
			continue
		}
		if r := Run(found, Options{Bugs: bugs}); !r.Failed() || len(r.Story) == 0 {
			t.Errorf("bug %s: seed %d replayed with its trace: failed %v, %d lines of story; want the same failure, told",
				name, found, r.Failed(), len(r.Story))
		}
		if Run(found, Options{Fast: true}).Failed() {
			t.Errorf("bug %s: seed %d fails without the bug too", name, found)
		}
		t.Logf("bug %s: found by seed %d", name, found)
	}
}

func TestParseBug(t *testing.T) {
	if _, err := ParseBug("no-such-bug"); err == nil {
		t.Fatal("ParseBug(no-such-bug) = nil error; want one naming the bugs")
	}
	if b, err := ParseBug(""); err != nil || b != (Bugs{}) {
		t.Fatalf(`ParseBug("") = %+v, %v; want none`, b, err)
	}
}
