package calc

import (
	"strings"
	"testing"
)

func TestExpr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1", "1"},
		{"1+2*3", "7"},
		{"(1+2)*3", "9"},
		{"(2+3)*4^2", "80"},
		{"10-4-3", "3"},       // left-associative
		{"100/10/5", "2"},     // left-associative
		{"2^3^2", "512"},      // right-associative
		{"2**3**2", "512"},    // ** is ^
		{"-2^2", "-4"},        // ^ binds tighter than unary minus
		{"(-2)^2", "4"},       //
		{"2^-1", "0.5"},       // a sign in the exponent
		{"-2^-2", "-0.25"},    //
		{"--3", "3"},          // unary minus twice
		{"+-+3", "-3"},        //
		{"2*-3", "-6"},        //
		{"-(2+3)", "-5"},      //
		{"7%3", "1"},          //
		{"-7%3", "-1"},        // sign of the dividend
		{"7.5%2", "1.5"},      //
		{"2*3%4", "2"},        // same level as *, left to right
		{"1+2^2*3", "13"},     //
		{"7/2", "3.5"},        // inexact division gives a float
		{"8/2", "4"},          // exact division stays an integer
		{"1e3", "1000"},       //
		{"1.5e-3*2", "0.003"}, //
		{"2.5E+2", "250"},     //
		{".5+.5", "1"},        //
		{"5.", "5"},           //
		{" ( 1 + 2 ) * 3 ", "9"},
		{"1\t+\n2", "3"},
		{"1\u00a0+\u16802", "3"}, // Unicode spaces, as around the expression (found by FuzzExpr)
		{"((((((((((1))))))))))", "1"},
		{"2^64", `"18446744073709551616"`},
		{"9007199254740995-1", `"9007199254740994"`},
		{"0.1+0.2", "0.30000000000000004"},
		{"2^0.5", "1.4142135623730951"},
		{"0^0", "1"},
	} {
		rep, e := compute(t, "expr "+tc.in)
		if e != nil {
			t.Errorf("expr %s: error %v; want %s", tc.in, e, tc.want)
			continue
		}
		if got := string(rep.Result); got != tc.want {
			t.Errorf("expr %s = %s; want %s", tc.in, got, tc.want)
		}
	}
}

func TestExprErrors(t *testing.T) {
	deep := strings.Repeat("(", MaxExprDepth) + "1" + strings.Repeat(")", MaxExprDepth)
	runErr(t, []errCase{
		{"division by zero", "expr 1/0", 400, "expr: division by zero"},
		{"division by zero expr", "expr 1/(2-2)", 400, "division by zero"},
		{"modulo by zero", "expr 1%0", 400, "modulo by zero"},
		{"syntax before arithmetic", "expr 1/0+", 400, "unexpected end"},
		{"unexpected end", "expr 1+", 400, "expr: unexpected end of expression"},
		{"unexpected char", "expr 1+x", 400, `expr: unexpected "x" at position 3`},
		{"unexpected unicode", "expr 1+×2", 400, `unexpected "×" at position 3`},
		{"position counts characters", "expr é+é", 400, `unexpected "é" at position 1`},
		{"missing close", "expr (1+2", 400, `expr: missing ")" for the "(" at position 1`},
		{"missing inner close", "expr (1+(2", 400, `"(" at position 4`},
		{"extra close", "expr (1+2))", 400, `unexpected ")" at position 6`},
		{"empty parens", "expr ()", 400, `unexpected ")"`},
		{"implicit product", "expr 2(3)", 400, `unexpected "("`},
		{"two numbers", "expr 1 2", 400, `unexpected "2"`},
		{"double op", "expr 1*/2", 400, `unexpected "/"`},
		{"lone point", "expr .", 400, `expr: number "." at position 1 is not a number`},
		{"two points", "expr 1.2.3", 400, `unexpected "."`},
		{"dangling exponent", "expr 1e", 400, `unexpected "e"`},
		{"out of range", "expr 1e999", 400, "out of range"},
		{"long number", "expr " + strings.Repeat("1", MaxNumberLen+1), 400, "too long"},
		{"too long", "expr " + strings.Repeat("1+", MaxExprLen/2) + "1", 400, "expression too long"},
		{"too deep parens", "expr (" + deep + ")", 400, "nested too deeply"},
		{"too deep signs", "expr " + strings.Repeat("-", MaxExprDepth) + "1", 400, "nested too deeply"},
		{"too deep powers", "expr " + strings.Repeat("1^", MaxExprDepth) + "1", 400, "nested too deeply"},
		{"pow too large", "expr 9^9^9", 400, "expr: result too large"},
		{"product too large", "expr 3^60000*3^60000", 400, "too large"},
		{"float overflow", "expr 1e300*1e300", 400, "overflow"},
		{"not real", "expr (-8)^0.5", 400, "not a real number"},
		{"zero negative power", "expr 0^-1", 400, "division by zero"},
		{"inf", "expr inf", 400, `unexpected "i"`},
	})
	// Just inside the depth bound still works.
	ok := strings.Repeat("(", MaxExprDepth-2) + "1" + strings.Repeat(")", MaxExprDepth-2)
	if _, e := compute(t, "expr "+ok); e != nil {
		t.Errorf("expr nested %d deep: %v", MaxExprDepth-2, e)
	}
}

// TestExprCheckOnly makes sure Parse refuses malformed expressions but
// leaves arithmetic, which it does not compute, to Eval.
func TestExprCheckOnly(t *testing.T) {
	if _, err := Parse([]byte("expr 1+"), 0); err == nil {
		t.Error(`Parse("expr 1+") = nil error; want a syntax error`)
	}
	if _, err := Parse([]byte("expr 1/0"), 0); err != nil {
		t.Errorf(`Parse("expr 1/0") error %v; want nil (it is Eval's to refuse)`, err)
	}
}
