package calc

import (
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/bilancia/bilancia/internal/jsonstr"
	"github.com/bilancia/bilancia/wire"
)

// compute runs one request with a fast test Env and checks the contract
// every reply keeps: errors are *wire.Error, repeated in the reply, and a
// success has valid JSON in Result and Args.
func compute(t testing.TB, in string) (wire.Reply, *wire.Error) {
	t.Helper()
	rep, err := Compute(context.Background(), []byte(in), Env{WorkerID: "w-test", MaxSleep: 50e6, MaxSpin: 50e6})
	if err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Fatalf("Compute(%q) error %T %v; want *wire.Error", in, err, err)
		}
		if rep.Error != we {
			t.Fatalf("Compute(%q) reply.Error = %v; want the returned error %v", in, rep.Error, we)
		}
		return rep, we
	}
	if !json.Valid(rep.Result) {
		t.Fatalf("Compute(%q) result %q is not JSON", in, rep.Result)
	}
	for i, a := range rep.Args {
		if !json.Valid(a) {
			t.Fatalf("Compute(%q) arg %d %q is not JSON", in, i, a)
		}
	}
	if rep.ID != "" || rep.Worker != "" || rep.Error != nil {
		t.Fatalf("Compute(%q) = %+v; want ID, Worker and Error empty", in, rep)
	}
	return rep, nil
}

type okCase struct {
	name, in, want string
}

func runOK(t *testing.T, cases []okCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, e := compute(t, tc.in)
			if e != nil {
				t.Fatalf("Compute(%q) error %v; want %s", tc.in, e, tc.want)
			}
			if got := string(rep.Result); got != tc.want {
				t.Errorf("Compute(%q) = %s; want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestOps(t *testing.T) {
	runOK(t, []okCase{
		{"add", "add 2 3", "5"},
		{"add many", "add 1 2 3 4 5", "15"},
		{"add alias somma", "somma 2 3", "5"},
		{"add alias sum", "sum 2 3", "5"},
		{"add upper case", "ADD 2 3", "5"},
		{"add mixed case alias", "Somma 2 3", "5"},
		{"add float", "add 0.1 0.2", "0.30000000000000004"},
		{"add mixed", "add 1 2.5", "3.5"},
		{"add negative", "add -5 +3", "-2"},
		{"sub", "sub 7 2", "5"},
		{"sub alias", "sottrazione 7 10", "-3"},
		{"mul", "mul 6 7", "42"},
		{"mul many", "mul 2 3 4", "24"},
		{"mul alias", "moltiplicazione 2 2.5", "5"},
		{"div exact", "div 10 2", "5"},
		{"div inexact", "div 7 2", "3.5"},
		{"div alias", "divisione 1 4", "0.25"},
		{"div float", "div 1.5 0.5", "3"},
		{"div big exact", "div 100000000000000000000000 1000", `"100000000000000000000"`},
		{"div negative", "div -9 3", "-3"},
		{"pow", "pow 2 10", "1024"},
		{"pow big", "pow 2 100", `"1267650600228229401496703205376"`},
		{"pow negative base", "pow -2 3", "-8"},
		{"pow zero zero", "pow 0 0", "1"},
		{"pow one huge", "pow 1 99999999999999999999999", "1"},
		{"pow minus one odd", "pow -1 99999999999999999999999", "-1"},
		{"pow negative exponent", "pow 2 -2", "0.25"},
		{"pow float", "pow 2.25 0.5", "1.5"},
		{"pow at bound", "pow 2 99999", `"` + new(big.Int).Lsh(big.NewInt(1), 99999).String() + `"`},
		{"sqrt exact", "sqrt 16", "4"},
		{"sqrt inexact", "sqrt 2", "1.4142135623730951"},
		{"sqrt float", "sqrt 2.25", "1.5"},
		{"sqrt zero", "sqrt 0", "0"},
		{"sqrt big square", "sqrt 152415787532388367504942236884722755800955129", `"12345678901234567890123"`},
		{"sqrt huge non-square", "sqrt 1" + strings.Repeat("0", 399) + "1", "1e+200"},
		{"mod", "mod 17 5", "2"},
		{"mod negative", "mod -7 3", "-1"},
		{"mod float", "mod 5.5 2", "1.5"},
		{"mod big", "mod 100000000000000000000000000001 7", "6"},
		{"fact 0", "fact 0", "1"},
		{"fact 5", "fact 5", "120"},
		{"fact 25", "fact 25", `"15511210043330985984000000"`},
		{"fact float integral", "fact 1e1", "3628800"},
		{"fib 0", "fib 0", "0"},
		{"fib 1", "fib 1", "1"},
		{"fib 10", "fib 10", "55"},
		{"fib 100", "fib 100", `"354224848179261915075"`},
		{"isprime 2", "isprime 2", "true"},
		{"isprime 97", "isprime 97", "true"},
		{"isprime 91", "isprime 91", "false"},
		{"isprime 1", "isprime 1", "false"},
		{"isprime 0", "isprime 0", "false"},
		{"isprime negative", "isprime -7", "false"},
		{"isprime mersenne", "isprime 170141183460469231731687303715884105727", "true"},
		{"isprime float integral", "isprime 7.0", "true"},
		{"expr", "expr (2+3)*4^2", "80"},
		{"sleep", "sleep 1", `"w-test"`},
		{"sleep zero", "sleep 0", `"w-test"`},
		{"spin", "spin 2", "2"},
		{"spin float", "spin 1.5", "1.5"},
	})
}

func TestExactBigIntegers(t *testing.T) {
	fact := new(big.Int).MulRange(1, MaxFact)
	fib := func(n int) *big.Int {
		a, b := big.NewInt(0), big.NewInt(1)
		for ; n > 0; n-- {
			a, b = b, new(big.Int).Add(a, b)
		}
		return a
	}
	runOK(t, []okCase{
		{"fact max", "fact 5000", `"` + fact.String() + `"`},
		{"fib max", "fib 10000", `"` + fib(MaxFib).String() + `"`},
		{"fib 78 is a number", "fib 78", fib(78).String()},
		{"add beyond 2^53", "add 9007199254740993 1", `"9007199254740994"`},
		{"2^53 is a number", "add 9007199254740991 1", "9007199254740992"},
		{"2^53+1 is a string", "add 9007199254740992 1", `"9007199254740993"`},
		{"-2^53 is a number", "sub -9007199254740991 1", "-9007199254740992"},
		{"below -2^53 is a string", "sub -9007199254740992 1", `"-9007199254740993"`},
		{"mul big", "mul 123456789012345678901234567890 987654321098765432109876543210", `"121932631137021795226185032733622923332237463801111263526900"`},
		{"sub big", "sub 100000000000000000000000000000 1", `"99999999999999999999999999999"`},
		{"json string in", `{"op":"add","args":["9007199254740993","1"]}`, `"9007199254740994"`},
		{"json big number in", `{"op":"add","args":[9007199254740993,1]}`, `"9007199254740994"`},
	})
}

func TestEcho(t *testing.T) {
	for _, tc := range []struct{ in, op, args string }{
		{"add 2 3", "add", `[2,3]`},
		{"SOMMA 007 -0", "add", `[7,0]`},
		{"add 9007199254740993 1.50", "add", `["9007199254740993",1.5]`},
		{"add 1e300 1", "add", `[1e+300,1]`},
		{"mul -0.0 1", "mul", `[0,1]`},
		{"expr  (2+3) * 4 ", "expr", `["(2+3) * 4"]`},
		{`{"op":"Sum","args":[" 2 ","3e0"]}`, "add", `[2,3]`},
		{"expr +\v0", "expr", `["+\u000b0"]`}, // JSON, not Go, escapes (found by FuzzExpr)
		{`{"op":"expr","args":["1\t+\n2"]}`, "expr", `["1\t+\n2"]`},
	} {
		rep, e := compute(t, tc.in)
		if e != nil {
			t.Fatalf("Compute(%q) error %v", tc.in, e)
		}
		args, _ := json.Marshal(rep.Args)
		if rep.Op != tc.op || string(args) != tc.args {
			t.Errorf("Compute(%q) op, args = %s, %s; want %s, %s", tc.in, rep.Op, args, tc.op, tc.args)
		}
	}
}

func TestForms(t *testing.T) {
	runOK(t, []okCase{
		{"text", "add 2 3", "5"},
		{"text spaces", "  \t add \t 2\n   3  \r\n", "5"},
		{"text unicode space", "add\u00a02 3", "5"},
		{"json", `{"op":"add","args":[2,3]}`, "5"},
		{"json spaces", " \n {\"op\" : \"add\" , \"args\" : [ 2 , 3 ] } \n", "5"},
		{"json strings", `{"op":"add","args":["2","3"]}`, "5"},
		{"json float", `{"op":"div","args":[1,4.0]}`, "0.25"},
		{"json exponent", `{"op":"add","args":[1e2,1E-2]}`, "100.01"},
		{"json alias upper", `{"op":"DIVISIONE","args":[8,2]}`, "4"},
		{"json extra field", `{"id":"x","op":"add","args":[2,3]}`, "5"},
		{"json expr", `{"op":"expr","args":["(2+3)*4^2"]}`, "80"},
		{"json expr number", `{"op":"expr","args":[42]}`, "42"},
		{"json key case", `{"OP":"add","Args":[2,3]}`, "5"},
	})
}

// errCase expects an error with code and a message containing want.
type errCase struct {
	name, in string
	code     int
	want     string
}

func runErr(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, e := compute(t, tc.in)
			if e == nil {
				t.Fatalf("Compute(%q) = %s; want error %d %q", tc.in, rep.Result, tc.code, tc.want)
			}
			if e.Code != tc.code || !strings.Contains(e.Message, tc.want) {
				t.Errorf("Compute(%q) error = %d %q; want %d containing %q", tc.in, e.Code, e.Message, tc.code, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	big := "add 1 " + strings.Repeat("1", MaxNumberLen+1)
	runErr(t, []errCase{
		{"empty", "", 400, "empty request"},
		{"blank", " \t\n ", 400, "empty request"},
		{"not utf8", "add 1 \xff", 400, "UTF-8"},
		{"unknown op", "foo 1 2", 400, `unknown op "foo"; try help`},
		{"unknown op long", "x" + strings.Repeat("y", 500), 400, `…; try help`},
		{"not a number", "add 1 x", 400, `argument 2: "x" is not a number`},
		{"not a number 1", "add x 1", 400, `argument 1: "x" is not a number`},
		{"hex", "add 0x10 1", 400, `"0x10" is not a number`},
		{"underscore", "add 1_000 1", 400, `"1_000" is not a number`},
		{"two points", "add 1.2.3 1", 400, "is not a number"},
		{"lone sign", "add - 1", 400, "is not a number"},
		{"dangling exponent", "add 1e 1", 400, "is not a number"},
		{"inf", "add inf 1", 400, "not a finite number"},
		{"-Infinity", "add 1 -Infinity", 400, "not a finite number"},
		{"nan", "add NaN 1", 400, "not a finite number"},
		{"json nan string", `{"op":"add","args":["nan",1]}`, 400, "not a finite number"},
		{"out of range", "add 1e400 1", 400, "out of range"},
		{"too long", big, 400, "too long"},
		{"too many args", "add" + strings.Repeat(" 1", MaxArgs+1), 400, "too many arguments"},
		{"json too many args", `{"op":"add","args":[` + strings.Repeat("1,", MaxArgs) + `1]}`, 400, "too many arguments"},
		{"too large", "add 1 " + strings.Repeat(" ", DefaultMaxPayload), 413, "too large"},
		{"add one arg", "add 1", 400, "add: needs 2 to 1000 numbers, got 1"},
		{"add no arg", "add", 400, "got 0"},
		{"sub three", "sub 1 2 3", 400, "sub: needs 2 numbers, got 3"},
		{"sqrt two", "sqrt 1 2", 400, "sqrt: needs 1 number, got 2"},
		{"expr empty", "expr", 400, "expr: needs 1 expression, got 0"},
		{"expr blank", "expr   ", 400, "needs 1 expression"},
		{"div zero", "div 1 0", 400, "division by zero"},
		{"div float zero", "div 1 0.0", 400, "division by zero"},
		{"div minus zero", "div 1 -0.0", 400, "division by zero"},
		{"mod zero", "mod 1 0", 400, "modulo by zero"},
		{"mod float zero", "mod 1.5 0.0", 400, "modulo by zero"},
		{"sqrt negative", "sqrt -4", 400, "negative"},
		{"sqrt negative float", "sqrt -0.5", 400, "negative"},
		{"pow too big", "pow 2 100001", 400, "too large"},
		{"pow huge exponent", "pow 3 99999999999999999999999", 400, "too large"},
		{"pow zero negative", "pow 0 -1", 400, "division by zero"},
		{"pow not real", "pow -8 0.5", 400, "not a real number"},
		{"pow float overflow", "pow 10.0 400", 400, "overflow"},
		{"mul too big", "mul " + strings.Repeat("9", 1000) + strings.Repeat(" "+strings.Repeat("9", 1000), 40), 400, "too large"},
		{"mul overflow", "mul 1e300 1e300", 400, "overflow"},
		{"mul overflow nan", "mul 1e308 10 0", 400, "overflow"},
		{"add overflow", "add 1.7e308 1.7e308", 400, "overflow"},
		{"fact negative", "fact -1", 400, "fact: n must be an integer between 0 and 5000"},
		{"fact too big", "fact 5001", 400, "between 0 and 5000"},
		{"fact float", "fact 2.5", 400, "must be an integer"},
		{"fact huge", "fact 99999999999999999999999", 400, "between 0 and 5000"},
		{"fib too big", "fib 10001", 400, "fib: n must be an integer between 0 and 10000"},
		{"fib negative", "fib -1", 400, "between 0 and 10000"},
		{"isprime float", "isprime 2.5", 400, "isprime: n must be an integer"},
		{"isprime too big int", "isprime 1" + strings.Repeat("0", 617), 400, "at most 2048 bits"},
		{"sleep negative", "sleep -1", 400, "sleep: ms must be between 0 and 50"},
		{"sleep too long", "sleep 51", 400, "between 0 and 50"},
		{"spin too long", "spin 1e9", 400, "spin: ms must be between 0 and 50"},
		{"json malformed", `{"op":"add",`, 400, "malformed JSON"},
		{"json trailing", `{"op":"add","args":[1,2]} x`, 400, "malformed JSON"},
		{"json two objects", `{"op":"add","args":[1,2]}{}`, 400, "malformed JSON"},
		{"json no op", `{"args":[1,2]}`, 400, `missing "op"`},
		{"json null op", `{"op":null,"args":[1,2]}`, 400, `missing "op"`},
		{"json op number", `{"op":1,"args":[1,2]}`, 400, `"op" must be a string`},
		{"json unknown op", `{"op":"nope","args":[1,2]}`, 400, `unknown op "nope"`},
		{"json args object", `{"op":"add","args":{"a":1}}`, 400, `"args" must be an array`},
		{"json args string", `{"op":"add","args":"1 2"}`, 400, `"args" must be an array`},
		{"json no args", `{"op":"add"}`, 400, "got 0"},
		{"json arg bool", `{"op":"add","args":[1,true]}`, 400, "argument 2: expected a number, got \"true\""},
		{"json arg null", `{"op":"add","args":[null,1]}`, 400, "argument 1: expected a number"},
		{"json arg array", `{"op":"add","args":[[1],1]}`, 400, "expected a number"},
		{"json arg bad string", `{"op":"add","args":["x",1]}`, 400, `argument 1: "x" is not a number`},
		{"json expr bool", `{"op":"expr","args":[true]}`, 400, "must be a string holding the expression"},
		{"json expr two", `{"op":"expr","args":["1","2"]}`, 400, "got 2"},
		{"json expr bad", `{"op":"expr","args":["1+"]}`, 400, "expr: unexpected end"},
		{"json not object", `{]`, 400, "malformed JSON"},
	})
}

func TestPayloadLimit(t *testing.T) {
	in := []byte("add 1 2" + strings.Repeat(" ", 100))
	if _, err := Parse(in, 100); err == nil || err.(*wire.Error).Code != wire.CodeTooLarge {
		t.Fatalf("Parse(%d bytes, 100) error = %v; want 413", len(in), err)
	}
	if _, err := Parse(in, 107); err != nil {
		t.Fatalf("Parse(%d bytes, 107) error = %v; want nil", len(in), err)
	}
	_, err := Compute(context.Background(), in, Env{MaxPayload: 10})
	if err == nil || err.(*wire.Error).Code != wire.CodeTooLarge {
		t.Fatalf("Compute with MaxPayload 10 error = %v; want 413", err)
	}
}

// TestStringRoundTrip checks that Command.String reads back as the same
// command, which is what lets a REPL or a log show it.
func TestStringRoundTrip(t *testing.T) {
	for _, in := range []string{
		"add 2 3", "SOMMA 1 -2.5 1e300 9007199254740993", `{"op":"expr","args":[" (1+2)\t*3 "]}`,
		`{"op":"mul","args":["1e-7",0.000001]}`, "isprime 97", "pow 10.0 400", "mul -0.0 1e21",
	} {
		c, err := Parse([]byte(in), 0)
		if err != nil {
			t.Fatalf("Parse(%q) error %v", in, err)
		}
		s := c.String()
		c2, err := Parse([]byte(s), 0)
		if err != nil {
			t.Fatalf("Parse(String() = %q) error %v", s, err)
		}
		if s2 := c2.String(); s2 != s {
			t.Errorf("Parse(%q).String() = %q; want %q", s, s2, s)
		}
		for i := range c.Args {
			if c.Args[i].Kind != c2.Args[i].Kind {
				t.Errorf("Parse(%q): argument %d changed kind", s, i+1)
			}
		}
	}
}

// TestEvalHandMade checks that commands built without Parse are validated
// rather than trusted.
func TestEvalHandMade(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		c    Command
		want string
	}{
		{"nil int", Command{Op: "add", Args: []Arg{{Kind: KindInt}, {Kind: KindInt, Int: big.NewInt(1)}}}, "argument 1: is not a number"},
		{"text for number", Command{Op: "add", Args: []Arg{{Kind: KindText, Text: "1"}, {Kind: KindFloat}}}, "argument 1"},
		{"bad kind", Command{Op: "sqrt", Args: []Arg{{Kind: 9}}}, "argument 1"},
		{"arity", Command{Op: "sub", Args: []Arg{{Kind: KindFloat}}}, "got 1"},
		{"unknown", Command{Op: "zap"}, `unknown op "zap"`},
	} {
		_, err := tc.c.Eval(ctx, Env{})
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != 400 || !strings.Contains(we.Message, tc.want) {
			t.Errorf("%s: Eval error = %v; want 400 containing %q", tc.name, err, tc.want)
		}
	}
	if got := (&Command{Op: "pow", Args: []Arg{{Kind: KindFloat, Float: 10}, {Kind: KindInt, Int: big.NewInt(2)}}}).String(); got != "pow 10.0 2" {
		t.Errorf("String() = %q; want %q", got, "pow 10.0 2")
	}
	c := Command{Op: "Sum", Args: []Arg{{Kind: KindInt, Int: big.NewInt(2)}, {Kind: KindFloat, Float: 0.5}}}
	rep, err := c.Eval(ctx, Env{})
	if err != nil || rep.Op != "add" || string(rep.Result) != "2.5" {
		t.Errorf("Eval(Sum 2 0.5) = %+v, %v; want add = 2.5", rep, err)
	}
}

// TestArgsNotMutated guards the promise that results never alias operands.
func TestArgsNotMutated(t *testing.T) {
	for _, in := range []string{"add 5 7 9", "mul 5 7", "sub 5 7", "div 10 5", "mod 12 5", "pow 5 3", "sqrt 25"} {
		c, err := Parse([]byte(in), 0)
		if err != nil {
			t.Fatal(err)
		}
		before := c.String()
		if _, err := c.Eval(context.Background(), Env{}); err != nil {
			t.Fatal(err)
		}
		if after := c.String(); after != before {
			t.Errorf("Eval changed %q to %q", before, after)
		}
	}
}

func TestOpsInfo(t *testing.T) {
	ops := Ops()
	if len(ops) != len(opTable) {
		t.Fatalf("len(Ops()) = %d; want %d", len(ops), len(opTable))
	}
	seen := map[string]bool{}
	for _, o := range ops {
		if o.Name == "" || o.Args == "" || o.Help == "" || o.Example == "" {
			t.Errorf("Ops() entry %+v is incomplete", o)
		}
		for _, n := range append([]string{o.Name}, o.Aliases...) {
			if seen[n] {
				t.Errorf("name %q appears twice", n)
			}
			seen[n] = true
		}
		if o.Name == "sleep" || o.Name == "spin" {
			continue
		}
		if _, e := compute(t, o.Example); e != nil {
			t.Errorf("example %q of %s fails: %v", o.Example, o.Name, e)
		}
	}
	ops[0].Aliases[0] = "changed"
	if Ops()[0].Aliases[0] == "changed" {
		t.Error("Ops() shares its slices with the table")
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\\`, "\x00\x01\v\f\b\n\r\t\x7f", "é€😀", "<&>", "bad\xffutf8", "\u2028"} {
		b := jsonstr.Append(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("appendJSONString(%q) = %s: not JSON: %v", s, b, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if got != want {
			t.Errorf("appendJSONString(%q) reads back as %q; want %q", s, got, want)
		}
	}
	rep, err := Compute(context.Background(), []byte("sleep 0"), Env{WorkerID: "w\v\"1"})
	if err != nil || !json.Valid(rep.Result) {
		t.Errorf("sleep with an odd worker id = %s, %v; want valid JSON", rep.Result, err)
	}
}
