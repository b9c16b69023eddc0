package calc

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// fuzzEnv keeps sleep and spin short so the fuzzer spends its time parsing.
var fuzzEnv = Env{WorkerID: "w-fuzz", MaxSleep: time.Millisecond, MaxSpin: time.Millisecond, MaxPayload: 4096}

// checkResult asserts the contract of any Compute outcome.
func checkResult(t *testing.T, in []byte, rep wire.Reply, err error) {
	t.Helper()
	for _, a := range rep.Args {
		if !json.Valid(a) {
			t.Fatalf("Compute(%q) arg %q is not JSON", in, a)
		}
	}
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Fatalf("Compute(%q) error %T %v; want *wire.Error", in, err, err)
		}
		if we.Code != wire.CodeBadRequest && we.Code != wire.CodeTooLarge {
			t.Fatalf("Compute(%q) code %d; want 400 or 413", in, we.Code)
		}
		if we.Message == "" || len(we.Message) > 300 {
			t.Fatalf("Compute(%q) message %q; want a short sentence", in, we.Message)
		}
		return
	}
	if !json.Valid(rep.Result) {
		t.Fatalf("Compute(%q) result %q is not JSON", in, rep.Result)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"add 2 3", "somma 1 2.5 -3e2", `{"op":"add","args":[2,"3"]}`, "expr (2+3)*4^2",
		`{"op":"expr","args":["-2^2"]}`, "fact 25", "fib 100", "isprime 97", "div 1 0",
		"pow 2 100", "sqrt 2", "mod -7 3", "sleep 1", "spin 1", "", "{", "add 1e999 nan",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in, fuzzEnv.MaxPayload)
		if err != nil {
			checkResult(t, in, wire.Reply{}, err)
			return
		}
		// What String prints, Parse reads back the same.
		s := c.String()
		c2, err := Parse([]byte(s), len(s)+1)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q fails: %v", in, s, err)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("String round trip of %q: %q then %q", in, s, s2)
		}
		for i := range c.Args {
			if c.Args[i].Kind != c2.Args[i].Kind {
				t.Fatalf("String round trip of %q: argument %d changed kind", in, i+1)
			}
		}
		rep, err := c.Eval(context.Background(), fuzzEnv)
		checkResult(t, in, rep, err)
	})
}

func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		"(2+3)*4^2", "-2^2", "2^3^2", "2**-1", "1/0", "7%3", "1e3+.5", "((1)", "9^9^9",
		"1.5e-3*2", "--+-1", "3^60000*3^60000", "1/3", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in := []byte("expr " + s)
		rep, err := Compute(context.Background(), in, fuzzEnv)
		checkResult(t, in, rep, err)
		if err != nil || len(s) > MaxExprLen-2 {
			return
		}
		// Parentheses change nothing, unless they pass the depth bound.
		in2 := []byte("expr (" + s + ")")
		rep2, err := Compute(context.Background(), in2, fuzzEnv)
		if err != nil {
			if strings.Contains(err.Error(), "nested too deeply") || strings.Contains(err.Error(), "too large") {
				return
			}
			t.Fatalf("expr %s = %s but (%s) fails: %v", s, rep.Result, s, err)
		}
		if string(rep2.Result) != string(rep.Result) {
			t.Fatalf("expr %s = %s but (%s) = %s", s, rep.Result, s, rep2.Result)
		}
	})
}
