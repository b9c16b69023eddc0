package calc

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// Random returns a random valid request in text form, for the REPL's
// `random N`. It draws only fast ops (no sleep or spin) and only operands
// that make every request succeed: divisors are never zero, roots never
// negative, and sizes stay small, so failures in a run mean a broken system,
// not a bad draw. r is not safe for concurrent use; nil means a fresh
// randomly seeded source.
func Random(r *rand.Rand) string {
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	var b strings.Builder
	switch r.IntN(11) {
	case 0:
		b.WriteString(pick(r, "add", "add", "somma", "sum"))
		for n := 2 + r.IntN(3); n > 0; n-- {
			b.WriteByte(' ')
			b.WriteString(randNumber(r))
		}
	case 1:
		b.WriteString(pick(r, "sub", "sub", "sottrazione"))
		words(&b, randNumber(r), randNumber(r))
	case 2:
		b.WriteString(pick(r, "mul", "mul", "moltiplicazione"))
		for n := 2 + r.IntN(2); n > 0; n-- {
			b.WriteByte(' ')
			b.WriteString(randNumber(r))
		}
	case 3:
		b.WriteString(pick(r, "div", "div", "divisione"))
		words(&b, randNumber(r), randNonZero(r))
	case 4:
		b.WriteString("pow")
		if r.IntN(4) == 0 { // a positive base keeps any real exponent real
			words(&b, randFloat(r, 1, 100), randFloat(r, -5, 5))
		} else {
			words(&b, strconv.Itoa(r.IntN(41)-20), strconv.Itoa(r.IntN(16)))
		}
	case 5:
		b.WriteString("sqrt")
		if r.IntN(2) == 0 {
			k := r.IntN(1000)
			words(&b, strconv.Itoa(k*k+r.IntN(2)*r.IntN(k+1)))
		} else {
			words(&b, randFloat(r, 0, 100000))
		}
	case 6:
		b.WriteString("mod")
		if r.IntN(4) == 0 {
			words(&b, randNumber(r), randFloat(r, 1, 50))
		} else {
			words(&b, randNumber(r), strconv.Itoa(1+r.IntN(97)))
		}
	case 7:
		words(&b, "fact", strconv.Itoa(r.IntN(31)))
	case 8:
		words(&b, "fib", strconv.Itoa(r.IntN(101)))
	case 9:
		n := r.Int64N(10000)
		if r.IntN(2) == 0 {
			n = r.Int64N(1<<62) | 1
		}
		words(&b, "isprime", strconv.FormatInt(n, 10))
	default:
		b.WriteString("expr ")
		randExpr(&b, r, 3)
	}
	return b.String()
}

// words writes each word after a space (the first one after none when the
// builder is empty).
func words(b *strings.Builder, ws ...string) {
	for _, w := range ws {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
}

func pick(r *rand.Rand, names ...string) string { return names[r.IntN(len(names))] }

// randNumber is an integer in [-1000, 1000] or, one time in three, a float
// with two decimals in the same range.
func randNumber(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return randFloat(r, -1000, 1000)
	}
	return strconv.Itoa(r.IntN(2001) - 1000)
}

// randNonZero is like randNumber but never zero, for divisors.
func randNonZero(r *rand.Rand) string {
	for {
		s := randNumber(r)
		if strings.Trim(s, "-0.") != "" {
			return s
		}
	}
}

// randFloat is a number with two decimals in [lo, hi], as a person types it.
func randFloat(r *rand.Rand, lo, hi int) string {
	cents := lo*100 + r.IntN((hi-lo)*100+1)
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	frac := strconv.Itoa(cents % 100)
	if len(frac) == 1 {
		frac = "0" + frac
	}
	return sign + strconv.Itoa(cents/100) + "." + frac
}

// randExpr writes an expression of the given depth at most. Divisors and
// exponents are literals (non-zero, small) so the value is always defined
// and stays far from overflow.
func randExpr(b *strings.Builder, r *rand.Rand, depth int) {
	if depth == 0 || r.IntN(4) == 0 {
		if r.IntN(4) == 0 {
			b.WriteString(randFloat(r, 0, 100))
		} else {
			b.WriteString(strconv.Itoa(r.IntN(101)))
		}
		return
	}
	sub := func() {
		if r.IntN(2) == 0 {
			b.WriteByte('(')
			randExpr(b, r, depth-1)
			b.WriteByte(')')
			return
		}
		randExpr(b, r, depth-1)
	}
	sp := pick(r, "", " ")
	switch r.IntN(7) {
	case 0:
		b.WriteString("-(")
		randExpr(b, r, depth-1)
		b.WriteByte(')')
	case 1, 2, 3:
		sub()
		b.WriteString(sp + pick(r, "+", "-", "*") + sp)
		sub()
	case 4, 5:
		sub()
		b.WriteString(sp + pick(r, "/", "%") + sp)
		b.WriteString(strconv.Itoa(1 + r.IntN(20)))
	default:
		b.WriteByte('(')
		randExpr(b, r, depth-1)
		b.WriteString(")^" + strconv.Itoa(r.IntN(4)))
	}
}
