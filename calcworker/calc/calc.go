// Package calc is the pure computation behind a calc worker: it parses a
// request in text or JSON form and evaluates it. It knows nothing of NATS,
// so every rule of the request language can be tested and fuzzed on its own.
//
// Every error it returns is a *wire.Error: 400 for a bad request, 413 for a
// payload over the limit, 504 when the context ends first. Every input is
// bounded (payload, arguments, digits, integer size, expression length and
// depth) so that no request can make a worker panic, recurse without end or
// allocate without limit.
package calc

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// Limits. They are generous for people and bound what one request can
// cost a worker.
const (
	DefaultMaxPayload = 64 << 10         // bytes, when Env.MaxPayload is 0
	DefaultMaxSleep   = 30 * time.Second // when Env.MaxSleep is 0
	DefaultMaxSpin    = 10 * time.Second // when Env.MaxSpin is 0

	MaxArgs      = 1000    // arguments of one command
	MaxNumberLen = 1000    // characters of one number literal
	MaxIntBits   = 100_000 // bits of any exact integer result (about 30,000 digits)
	MaxFact      = 5000    // largest n for fact
	MaxFib       = 10000   // largest n for fib
	MaxPrimeBits = 2048    // bits of the largest n for isprime: the test's cost grows with the cube of the bits
	MaxExprLen   = 4096    // bytes of one expression, which bounds its work together with MaxIntBits
	MaxExprDepth = 200     // nesting of parentheses, unary signs and powers
)

// Env carries what a computation needs from its worker. Zero values mean the
// documented defaults.
type Env struct {
	WorkerID   string        // returned by sleep
	MaxSleep   time.Duration // 0 = DefaultMaxSleep; bound for sleep
	MaxSpin    time.Duration // 0 = DefaultMaxSpin; bound for spin
	MaxPayload int           // 0 = DefaultMaxPayload; larger payloads are refused with 413
	Delay      time.Duration // extra delay before every op, to simulate a slow worker; 0 = none
}

func (e *Env) maxSleep() time.Duration { return orDefault(e.MaxSleep, DefaultMaxSleep) }
func (e *Env) maxSpin() time.Duration  { return orDefault(e.MaxSpin, DefaultMaxSpin) }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Command is a parsed request: a canonical op name and its operands.
type Command struct {
	Op   string // canonical lower-case name, e.g. "add" for "SOMMA"
	Args []Arg
}

// String returns the command in text form; Parse reads it back to an
// equal command, so it is safe to log and to resend.
func (c *Command) String() string {
	var b strings.Builder
	b.WriteString(c.Op)
	for _, a := range c.Args {
		b.WriteByte(' ')
		b.WriteString(a.String())
	}
	return b.String()
}

// Compute parses payload and evaluates it: what a worker does with a request.
// The error, if any, is a *wire.Error.
func Compute(ctx context.Context, payload []byte, env Env) (wire.Reply, error) {
	c, e := parse(payload, env.MaxPayload)
	if e != nil {
		return wire.Reply{Error: e}, e
	}
	return c.Eval(ctx, env)
}

// Eval computes the command. The reply has Op, Args (normalised, as JSON) and
// Result; ID and Worker are left for the worker to fill. On failure the error
// is a *wire.Error, and the reply carries the same error in its Error field
// along with whatever of Op and Args is known, ready to be sent.
func (c *Command) Eval(ctx context.Context, env Env) (wire.Reply, error) {
	rep := wire.Reply{Op: c.Op}
	fail := func(e *wire.Error) (wire.Reply, error) {
		rep.Error = e
		return rep, e
	}
	spec := lookup(c.Op)
	if spec == nil {
		return fail(unknownOp(c.Op))
	}
	rep.Op = spec.Name
	// Commands built by hand rather than by Parse get the same checks.
	if e := checkArgs(spec, c.Args); e != nil {
		return fail(e)
	}
	rep.Args = make([]json.RawMessage, len(c.Args))
	for i, a := range c.Args {
		rep.Args[i] = a.appendJSON(nil)
	}
	if e := wait(ctx, env.Delay); e != nil {
		return fail(e)
	}
	res, e := spec.run(ctx, &env, c.Args)
	if e != nil {
		return fail(e)
	}
	rep.Result = res
	return rep, nil
}

// wait sleeps for d unless ctx ends first; it also reports a context that
// has already ended, so no work starts for a request nobody waits for.
func wait(ctx context.Context, d time.Duration) *wire.Error {
	if err := ctx.Err(); err != nil {
		return ctxError(err)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctxError(ctx.Err())
	}
}

func ctxError(err error) *wire.Error {
	if err == context.Canceled {
		return wire.NewError(wire.CodeDeadline, "deadline passed (request cancelled)")
	}
	return wire.NewError(wire.CodeDeadline, wire.WorkerDeadline)
}
