package calc

import (
	"math/big"
	"math/rand/v2"
	"testing"
)

// TestQuoFloat holds quoFloat to big.Rat's correctly rounded quotient,
// on quotients in the normal and the subnormal range and near its ends.
func TestQuoFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randInt := func(bits int) *big.Int {
		z := new(big.Int)
		for range bits/64 + 1 {
			z.Lsh(z, 64).Or(z, new(big.Int).SetUint64(r.Uint64()))
		}
		z.Rsh(z, uint(z.BitLen()-bits+1)) // bits bits, at most
		z.SetBit(z, bits-1, 1)
		if r.IntN(2) == 0 {
			z.Neg(z)
		}
		return z
	}
	for i := range 20000 {
		a, b := randInt(1+r.IntN(200)), randInt(1+r.IntN(200))
		switch i % 4 {
		case 1: // around the subnormal range: b about 2^1022..2^1080 times a
			b = new(big.Int).Lsh(b, uint(1000+r.IntN(100)))
		case 2: // around overflow
			a = new(big.Int).Lsh(a, uint(1000+r.IntN(40)))
		case 3: // ties and near-ties: small odd denominators
			b = big.NewInt(int64(2*r.IntN(50) + 1))
		}
		want, _ := new(big.Rat).SetFrac(a, b).Float64()
		if got := quoFloat(a, b); got != want {
			t.Fatalf("quoFloat(%v, %v) = %v; big.Rat says %v", a, b, got, want)
		}
	}
}
