package calc

import (
	"context"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

func evalErr(t *testing.T, ctx context.Context, in string, env Env) (wire.Reply, *wire.Error) {
	t.Helper()
	rep, err := Compute(ctx, []byte(in), env)
	if err == nil {
		return rep, nil
	}
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("Compute(%q) error %T; want *wire.Error", in, err)
	}
	return rep, we
}

func TestSleepWaits(t *testing.T) {
	start := time.Now()
	rep, e := evalErr(t, context.Background(), "sleep 20", Env{WorkerID: "w-1"})
	if e != nil || string(rep.Result) != `"w-1"` {
		t.Fatalf("sleep 20 = %s, %v; want \"w-1\"", rep.Result, e)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("sleep 20 took %v; want at least 20ms", d)
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, e := evalErr(t, ctx, "sleep 10000", Env{})
	if e == nil || e.Code != wire.CodeDeadline || e.Message != wire.WorkerDeadline {
		t.Fatalf("sleep past the deadline error = %v; want 504 deadline passed", e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("sleep returned after %v; want soon after the 20ms deadline", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, e := evalErr(t, ctx, "sleep 10000", Env{}); e == nil || e.Code != wire.CodeDeadline {
		t.Fatalf("sleep with cancelled ctx error = %v; want 504", e)
	}
}

func TestSpin(t *testing.T) {
	start := time.Now()
	rep, e := evalErr(t, context.Background(), "spin 15", Env{})
	if e != nil || string(rep.Result) != "15" {
		t.Fatalf("spin 15 = %s, %v; want 15", rep.Result, e)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("spin 15 took %v; want at least 15ms", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, e := evalErr(t, ctx, "spin 10000", Env{}); e == nil || e.Code != wire.CodeDeadline {
		t.Fatalf("spin past the deadline error = %v; want 504", e)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("spin returned after %v; want soon after the 10ms deadline", d)
	}
}

func TestBoundsFromEnv(t *testing.T) {
	if _, e := evalErr(t, context.Background(), "sleep 30001", Env{}); e == nil || e.Message != "sleep: ms must be between 0 and 30000" {
		t.Errorf("sleep 30001 with default bound: %v; want the 30000 bound", e)
	}
	if _, e := evalErr(t, context.Background(), "spin 10001", Env{}); e == nil || e.Message != "spin: ms must be between 0 and 10000" {
		t.Errorf("spin 10001 with default bound: %v; want the 10000 bound", e)
	}
	if _, e := evalErr(t, context.Background(), "sleep 11", Env{MaxSleep: 10 * time.Millisecond}); e == nil || e.Code != 400 {
		t.Errorf("sleep 11 with MaxSleep 10ms: %v; want 400", e)
	}
}

func TestDelay(t *testing.T) {
	start := time.Now()
	if _, e := evalErr(t, context.Background(), "add 1 2", Env{Delay: 15 * time.Millisecond}); e != nil {
		t.Fatal(e)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Errorf("add with Delay 15ms took %v; want at least 15ms", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	rep, e := evalErr(t, ctx, "add 1 2", Env{Delay: time.Minute})
	if e == nil || e.Code != wire.CodeDeadline {
		t.Fatalf("Delay past the deadline: %v; want 504", e)
	}
	if rep.Op != "add" || len(rep.Args) != 2 || rep.Error != e {
		t.Errorf("error reply = %+v; want op, args and the error", rep)
	}
}

// TestLongOpsHonourContext: ops that can run long check their ctx as
// they go, not only before they start: expr between operations, fib in
// its loop.
func TestLongOpsHonourContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, e := evalExpr(ctx, "2^1000*3^1000+5", false); e == nil || e.Code != wire.CodeDeadline {
		t.Errorf("evalExpr with its ctx ended = %v; want 504", e)
	}
	if _, e := evalExpr(ctx, "2^1000*3^1000+5", true); e != nil {
		t.Errorf("checking the syntax with its ctx ended = %v; want nothing computed, no error", e)
	}
	n := Arg{Kind: KindInt, Int: big.NewInt(10000)}
	if _, e := runFib(ctx, &Env{}, []Arg{n}); e == nil || e.Code != wire.CodeDeadline {
		t.Errorf("fib 10000 with its ctx ended = %v; want 504", e)
	}
	if _, e := runFib(context.Background(), &Env{}, []Arg{n}); e != nil {
		t.Errorf("fib 10000 = %v; want a result", e)
	}
}
