package calc

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestRandomAlwaysValid: `random N` must measure the system, so every
// command Random draws has to succeed.
func TestRandomAlwaysValid(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	for i := 0; i < 20000; i++ {
		in := Random(r)
		rep, err := Compute(context.Background(), []byte(in), Env{})
		if err != nil {
			t.Fatalf("Random() = %q fails: %v", in, err)
		}
		if rep.Op == "sleep" || rep.Op == "spin" {
			t.Fatalf("Random() = %q; want only fast ops", in)
		}
		seen[rep.Op]++
		seen[strings.Fields(in)[0]]++
	}
	for _, op := range []string{"add", "sub", "mul", "div", "pow", "sqrt", "mod", "fact", "fib", "isprime", "expr", "somma", "divisione"} {
		if seen[op] == 0 {
			t.Errorf("Random never drew %s", op)
		}
	}
	if Random(nil) == "" {
		t.Error("Random(nil) is empty")
	}
}

func TestRandomDeterministic(t *testing.T) {
	a, b := rand.New(rand.NewPCG(7, 7)), rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 100; i++ {
		if x, y := Random(a), Random(b); x != y {
			t.Fatalf("same seed gave %q and %q", x, y)
		}
	}
}
