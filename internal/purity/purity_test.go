package purity_test

import (
	"testing"

	"github.com/bilancia/bilancia/internal/purity"
)

// TestPureBites: the check finds each forbidden thing in a snippet that
// has it, and passes one that has none.
func TestPureBites(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"nats", `package p; import "github.com/nats-io/nats.go"; var _ = nats.Connect`},
		{"sync", `package p; import "sync"; var mu sync.Mutex`},
		{"atomic", `package p; import "sync/atomic"; var n atomic.Int64`},
		{"now", `package p; import "time"; func f() { _ = time.Now() }`},
		{"since", `package p; import "time"; func f(t time.Time) { _ = time.Since(t) }`},
		{"renamed clock", `package p; import tm "time"; func f() { _ = tm.Now() }`},
		{"rand", `package p; import "math/rand"; func f() int { return rand.Intn(3) }`},
		{"rand v2", `package p; import "math/rand/v2"; func f() int { return rand.N(3) }`},
		{"goroutine", `package p; func f() { go f() }`},
	} {
		bad, err := purity.Impurities(tc.name+".go", []byte(tc.src))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(bad) == 0 {
			t.Errorf("%s: nothing found in %q", tc.name, tc.src)
		}
	}
	clean := `package p; import ("time"; "math/rand/v2"); func f(r *rand.Rand, d time.Duration) int { _ = d * time.Millisecond; return r.IntN(3) }`
	if bad, err := purity.Impurities("clean.go", []byte(clean)); err != nil || len(bad) != 0 {
		t.Errorf("clean snippet: %v, %v; want nothing", bad, err)
	}
}
