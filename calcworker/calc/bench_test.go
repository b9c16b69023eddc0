package calc

import (
	"context"
	"math/big"
	"strings"
	"testing"
)

func BenchmarkCompute(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"add", "add 2 3"},
		{"add-json", `{"op":"add","args":[2,3]}`},
		{"mul-big", "mul 123456789012345678901234567890 987654321"},
		{"expr", "expr (2+3)*4^2-7/2"},
		{"fact100", "fact 100"},
		{"isprime", "isprime 1000000007"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			payload := []byte(bc.in)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compute(context.Background(), payload, Env{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWorstCase measures the most expensive requests the limits allow,
// the numbers behind them: SECURITY.md's table of what each op may cost
// (about 0.15 CPU-seconds at most on its machine).
func BenchmarkWorstCase(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"expr-pow", "expr " + strings.Repeat("3^62000+", MaxExprLen/8-1) + "1"},
		{"expr-div", "expr " + strings.Repeat("3^62000/(3^62000+1)+", MaxExprLen/20-1) + "1"},
		// Inexact divisions of integers whose GCD takes many steps.
		{"expr-div-gcd", "expr " + strings.Repeat("3^62000/(2^98000+1)+", MaxExprLen/20-1) + "1"},
		{"expr-mod-float", "expr " + strings.Repeat("1e308%5e-324+", MaxExprLen/13-1) + "1"},
		{"pow-max", "pow 3 63000"}, // 99,855 bits
		{"div-long", "div " + strings.Repeat("7", MaxNumberLen) + " " + strings.Repeat("3", 800)},
		{"sqrt-long", "sqrt " + strings.Repeat("7", 600)}, // beyond 616 digits the root is no float64
		{"fact-max", "fact 5000"},
		{"fib-max", "fib 10000"},
		{"isprime-2048", "isprime " + prime2048},
		{"mul-long", "mul" + strings.Repeat(" "+strings.Repeat("9", MaxNumberLen), 30)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			payload := []byte(bc.in)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compute(context.Background(), payload, Env{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// prime2048 is 2^2048 - 1557, the largest prime isprime accepts and so its
// slowest input: a prime must pass every round.
var prime2048 = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 2048), big.NewInt(1557)).String()
