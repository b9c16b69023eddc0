package calc

import (
	"math"
	"math/big"
	"strconv"

	"github.com/bilancia/bilancia/wire"
)

// Arithmetic shared by the ops and expr. Each returns a fresh value or a
// 400 error with a bare message the caller prefixes with the op's name.

func errTooBig() *wire.Error {
	return bad("result too large (more than " + strconv.Itoa(MaxIntBits) + " bits)")
}

func checkInt(z *big.Int) (num, *wire.Error) {
	if z.BitLen() > MaxIntBits {
		return num{}, errTooBig()
	}
	return intNum(z), nil
}

func checkFloat(f float64) (num, *wire.Error) {
	switch {
	case math.IsNaN(f):
		return num{}, bad("result is not a real number")
	case math.IsInf(f, 0):
		return num{}, bad("result is too large for a float (overflow)")
	}
	return floatNum(f), nil
}

func addNum(a, b num) (num, *wire.Error) {
	if bothInt(a, b) {
		return checkInt(new(big.Int).Add(a.i, b.i))
	}
	return checkFloat(a.float() + b.float())
}

func subNum(a, b num) (num, *wire.Error) {
	if bothInt(a, b) {
		return checkInt(new(big.Int).Sub(a.i, b.i))
	}
	return checkFloat(a.float() - b.float())
}

func mulNum(a, b num) (num, *wire.Error) {
	if bothInt(a, b) {
		// The size of a product is known before computing it.
		if a.i.BitLen()+b.i.BitLen() > MaxIntBits+1 {
			return num{}, errTooBig()
		}
		return checkInt(new(big.Int).Mul(a.i, b.i))
	}
	return checkFloat(a.float() * b.float())
}

func negNum(a num) num {
	if a.i != nil {
		return intNum(new(big.Int).Neg(a.i))
	}
	return floatNum(-a.f)
}

// divNum is exact when b divides a; otherwise the correctly rounded float.
func divNum(a, b num) (num, *wire.Error) {
	if b.isZero() {
		return num{}, bad("division by zero")
	}
	if bothInt(a, b) {
		q, r := new(big.Int).QuoRem(a.i, b.i, new(big.Int))
		if r.Sign() == 0 {
			return intNum(q), nil
		}
		return checkFloat(quoFloat(a.i, b.i))
	}
	return checkFloat(a.float() / b.float())
}

// quoFloat is a / b correctly rounded to a float64, b != 0. Not through
// big.Rat: its normalisation takes a GCD, quadratic in the size of the
// operands, which made one division of two 100,000-bit integers cost
// tens of milliseconds. A quotient correctly rounded to 2×53+2 bits,
// rounded again to a float64's precision (or less, in the subnormal
// range), is correctly rounded (Figueroa's theorem on double rounding);
// big.Float's division costs about what QuoRem did.
func quoFloat(a, b *big.Int) float64 {
	x := new(big.Float).SetInt(a) // exact: SetInt takes the precision it needs
	y := new(big.Float).SetInt(b)
	f, _ := new(big.Float).SetPrec(2*53+2).Quo(x, y).Float64()
	return f
}

// modNum truncates like Go's % and math.Mod: the result has a's sign.
func modNum(a, b num) (num, *wire.Error) {
	if b.isZero() {
		return num{}, bad("modulo by zero")
	}
	if bothInt(a, b) {
		return intNum(new(big.Int).Rem(a.i, b.i)), nil
	}
	return checkFloat(math.Mod(a.float(), b.float()))
}

// powNum is exact for an integer base and a non-negative integer exponent,
// as long as the result stays within MaxIntBits.
func powNum(a, b num) (num, *wire.Error) {
	if bothInt(a, b) && b.i.Sign() >= 0 {
		return powInt(a.i, b.i)
	}
	x, y := a.float(), b.float()
	if x == 0 && y < 0 {
		return num{}, bad("zero to a negative power (division by zero)")
	}
	return checkFloat(math.Pow(x, y))
}

func powInt(x, y *big.Int) (num, *wire.Error) {
	switch {
	case x.Sign() == 0 && y.Sign() == 0:
		return intNum(big.NewInt(1)), nil // 0^0 = 1, as math.Pow says
	case x.Sign() == 0:
		return intNum(new(big.Int)), nil
	case x.IsInt64() && x.Int64() == 1:
		return intNum(big.NewInt(1)), nil
	case x.IsInt64() && x.Int64() == -1:
		return intNum(big.NewInt(1 - 2*int64(y.Bit(0)))), nil
	}
	// |x| >= 2, so the result has at least (bitlen(x)-1)*y+1 bits: refuse
	// before spending time on a number we would refuse anyway.
	if !y.IsInt64() || y.Int64() > MaxIntBits || int64(x.BitLen()-1)*y.Int64() >= MaxIntBits {
		return num{}, errTooBig()
	}
	return checkInt(new(big.Int).Exp(x, y, nil))
}

// sqrtNum is exact for perfect squares, else the nearest float.
func sqrtNum(a num) (num, *wire.Error) {
	if a.i != nil {
		if a.i.Sign() < 0 {
			return num{}, bad("square root of a negative number")
		}
		r := new(big.Int).Sqrt(a.i)
		if new(big.Int).Mul(r, r).Cmp(a.i) == 0 {
			return intNum(r), nil
		}
		// Through big.Float so integers beyond float64 range still work.
		f, _ := new(big.Float).SetPrec(64).Sqrt(new(big.Float).SetInt(a.i)).Float64()
		return checkFloat(f)
	}
	if a.f < 0 {
		return num{}, bad("square root of a negative number")
	}
	return checkFloat(math.Sqrt(a.f))
}

// integer returns n as an integer, accepting floats with no fraction such
// as 1e3, so that "fact 1e3" means what it says.
func integer(n num) (*big.Int, bool) {
	if n.i != nil {
		return n.i, true
	}
	if n.f != math.Trunc(n.f) {
		return nil, false
	}
	z, _ := new(big.Float).SetFloat64(n.f).Int(nil)
	return z, true
}
