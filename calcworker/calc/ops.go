package calc

import (
	"context"
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/bilancia/bilancia/internal/jsonstr"
	"github.com/bilancia/bilancia/wire"
)

// OpInfo describes one operation for people: the REPL's help is built from it.
type OpInfo struct {
	Name    string   // canonical lower-case name
	Aliases []string // other accepted names (the seed's Italian ones)
	Args    string   // arity and bounds, in words: "2 to 1000 numbers"
	Example string   // a valid request in text form
	Help    string   // one line
}

// opSpec is an operation: its description, arity and implementation.
type opSpec struct {
	OpInfo
	min, max int  // number of arguments; max < 0 means no upper bound
	text     bool // takes one expression string instead of numbers
	run      func(ctx context.Context, env *Env, args []Arg) (json.RawMessage, *wire.Error)
}

var opTable = []*opSpec{
	{OpInfo: OpInfo{"add", []string{"somma", "sum"}, "2 to " + strconv.Itoa(MaxArgs) + " numbers", "add 2 3", "sum of the numbers"}, min: 2, max: -1, run: fold("add", addNum)},
	{OpInfo: OpInfo{"sub", []string{"sottrazione"}, "2 numbers", "sub 7 2", "a - b"}, min: 2, max: 2, run: binary("sub", subNum)},
	{OpInfo: OpInfo{"mul", []string{"moltiplicazione"}, "2 to " + strconv.Itoa(MaxArgs) + " numbers", "mul 6 7", "product of the numbers"}, min: 2, max: -1, run: fold("mul", mulNum)},
	{OpInfo: OpInfo{"div", []string{"divisione"}, "2 numbers", "div 7 2", "a / b; exact when b divides a; dividing by zero is an error"}, min: 2, max: 2, run: binary("div", divNum)},
	{OpInfo: OpInfo{"pow", nil, "2 numbers", "pow 2 100", "a raised to b; exact for integers"}, min: 2, max: 2, run: binary("pow", powNum)},
	{OpInfo: OpInfo{"sqrt", nil, "1 number", "sqrt 2", "square root; exact for perfect squares"}, min: 1, max: 1, run: unary("sqrt", sqrtNum)},
	{OpInfo: OpInfo{"mod", nil, "2 numbers", "mod 17 5", "remainder of a / b, with the sign of a (like Go's %)"}, min: 2, max: 2, run: binary("mod", modNum)},
	{OpInfo: OpInfo{"fact", nil, "1 integer, 0 to " + strconv.Itoa(MaxFact), "fact 25", "n!, exact"}, min: 1, max: 1, run: runFact},
	{OpInfo: OpInfo{"fib", nil, "1 integer, 0 to " + strconv.Itoa(MaxFib), "fib 100", "the n-th Fibonacci number (fib 0 = 0, fib 1 = 1), exact"}, min: 1, max: 1, run: runFib},
	{OpInfo: OpInfo{"isprime", nil, "1 integer of at most " + strconv.Itoa(MaxPrimeBits) + " bits", "isprime 97", "true if n is prime (certain below 2^64, else wrong with odds below 2^-40)"}, min: 1, max: 1, run: runIsPrime},
	{OpInfo: OpInfo{"expr", nil, "1 expression", "expr (2+3)*4^2", "evaluates + - * / % ^ and parentheses, at most " + strconv.Itoa(MaxExprLen) + " bytes; ^ binds tighter than unary minus"}, min: 1, max: 1, text: true, run: runExpr},
	{OpInfo: OpInfo{"sleep", nil, "1 number of ms, 0 to " + msText(DefaultMaxSleep), "sleep 100", "waits, then returns the worker id (a slow job; the worker's --max-sleep sets the bound)"}, min: 1, max: 1, run: runSleep},
	{OpInfo: OpInfo{"spin", nil, "1 number of ms, 0 to " + msText(DefaultMaxSpin), "spin 100", "burns CPU for that long and returns the milliseconds (a heavy job; the worker's --max-spin sets the bound)"}, min: 1, max: 1, run: runSpin},
}

// opIndex maps every name and alias to its op.
var opIndex = func() map[string]*opSpec {
	m := make(map[string]*opSpec)
	for _, s := range opTable {
		m[s.Name] = s
		for _, a := range s.Aliases {
			m[a] = s
		}
	}
	return m
}()

// Ops describes the operations, in a stable order, for help screens.
func Ops() []OpInfo {
	out := make([]OpInfo, len(opTable))
	for i, s := range opTable {
		out[i] = s.OpInfo
		out[i].Aliases = append([]string(nil), s.Aliases...)
	}
	return out
}

func lookup(name string) *opSpec { return opIndex[strings.ToLower(name)] }

func unknownOp(name string) *wire.Error {
	return bad("unknown op " + quote(name) + "; try help")
}

// quote quotes s for a message, cut short so that an error never echoes a
// whole payload back.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// checkArity reports a wrong number of arguments with the op's usage.
func checkArity(s *opSpec, n int) *wire.Error {
	if n >= s.min && (s.max < 0 || n <= s.max) {
		return nil
	}
	return bad(s.Name + ": needs " + s.Args + ", got " + strconv.Itoa(n) + " (e.g. " + s.Example + ")")
}

// checkArgs validates arguments that may not come from Parse: arity, kinds
// and finiteness.
func checkArgs(s *opSpec, args []Arg) *wire.Error {
	if e := checkArity(s, len(args)); e != nil {
		return e
	}
	for i, a := range args {
		switch {
		case s.text:
		case a.Kind == KindInt && a.Int == nil, a.Kind == KindText, a.Kind > KindText:
			return bad(argPrefix(i) + "is not a number")
		case a.Kind == KindFloat && (math.IsNaN(a.Float) || math.IsInf(a.Float, 0)):
			return bad(argPrefix(i) + "is not a finite number")
		}
	}
	return nil
}

func argPrefix(i int) string { return "argument " + strconv.Itoa(i+1) + ": " }

// fold applies f left to right over two or more arguments.
func fold(name string, f func(a, b num) (num, *wire.Error)) func(context.Context, *Env, []Arg) (json.RawMessage, *wire.Error) {
	return func(_ context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
		acc := args[0].num()
		for _, a := range args[1:] {
			var e *wire.Error
			if acc, e = f(acc, a.num()); e != nil {
				return nil, prefix(name, e)
			}
		}
		return acc.appendJSON(nil), nil
	}
}

func binary(name string, f func(a, b num) (num, *wire.Error)) func(context.Context, *Env, []Arg) (json.RawMessage, *wire.Error) {
	return func(_ context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
		r, e := f(args[0].num(), args[1].num())
		if e != nil {
			return nil, prefix(name, e)
		}
		return r.appendJSON(nil), nil
	}
}

func unary(name string, f func(a num) (num, *wire.Error)) func(context.Context, *Env, []Arg) (json.RawMessage, *wire.Error) {
	return func(_ context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
		r, e := f(args[0].num())
		if e != nil {
			return nil, prefix(name, e)
		}
		return r.appendJSON(nil), nil
	}
}

func prefix(name string, e *wire.Error) *wire.Error {
	return wire.NewError(e.Code, name+": "+e.Message)
}

// smallInt returns the argument as an int in [0, max], or false.
func smallInt(a Arg, max int64) (int64, bool) {
	z, ok := integer(a.num())
	if !ok || !z.IsInt64() || z.Int64() < 0 || z.Int64() > max {
		return 0, false
	}
	return z.Int64(), true
}

func runFact(_ context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
	n, ok := smallInt(args[0], MaxFact)
	if !ok {
		return nil, bad("fact: n must be an integer between 0 and " + strconv.Itoa(MaxFact))
	}
	return intNum(new(big.Int).MulRange(1, n)).appendJSON(nil), nil
}

func runFib(ctx context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
	n, ok := smallInt(args[0], MaxFib)
	if !ok {
		return nil, bad("fib: n must be an integer between 0 and " + strconv.Itoa(MaxFib))
	}
	a, b := new(big.Int), big.NewInt(1)
	for ; n > 0; n-- {
		a.Add(a, b)
		a, b = b, a
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, ctxError(err)
			}
		}
	}
	return intNum(a).appendJSON(nil), nil
}

func runIsPrime(_ context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
	z, ok := integer(args[0].num())
	if !ok {
		return nil, bad("isprime: n must be an integer")
	}
	if z.BitLen() > MaxPrimeBits {
		return nil, bad("isprime: n must have at most " + strconv.Itoa(MaxPrimeBits) + " bits")
	}
	if z.Sign() > 0 && z.ProbablyPrime(20) {
		return json.RawMessage("true"), nil
	}
	return json.RawMessage("false"), nil
}

func runExpr(ctx context.Context, _ *Env, args []Arg) (json.RawMessage, *wire.Error) {
	v, e := evalExpr(ctx, args[0].String(), false)
	if e != nil {
		return nil, e
	}
	return v.appendJSON(nil), nil
}

// millis reads a duration in milliseconds bounded by max.
func millis(name string, a Arg, max time.Duration) (time.Duration, *wire.Error) {
	ms := a.num().float()
	limit := float64(max) / float64(time.Millisecond)
	if !(ms >= 0 && ms <= limit) {
		return 0, bad(name + ": ms must be between 0 and " + strconv.FormatFloat(limit, 'f', -1, 64))
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}

func runSleep(ctx context.Context, env *Env, args []Arg) (json.RawMessage, *wire.Error) {
	d, e := millis("sleep", args[0], env.maxSleep())
	if e != nil {
		return nil, e
	}
	if e := wait(ctx, d); e != nil {
		return nil, e
	}
	return jsonstr.Append(nil, env.WorkerID), nil
}

func runSpin(ctx context.Context, env *Env, args []Arg) (json.RawMessage, *wire.Error) {
	d, e := millis("spin", args[0], env.maxSpin())
	if e != nil {
		return nil, e
	}
	start := time.Now()
	x := 1.0
	for time.Since(start) < d {
		// A few microseconds of work between checks: the clock and ctx are
		// looked at far more often than every millisecond.
		for i := 0; i < 1000; i++ {
			x = x*1.0000001 + 1e-9
		}
		if x < 0 { // never true; keeps the work observable
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, ctxError(err)
		}
	}
	return args[0].num().appendJSON(nil), nil
}

// msText is d in whole milliseconds, for a help line.
func msText(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
