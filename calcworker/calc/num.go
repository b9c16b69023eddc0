package calc

import (
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/bilancia/bilancia/internal/jsonstr"
	"github.com/bilancia/bilancia/wire"
)

// Kind tells what an Arg holds.
type Kind uint8

const (
	KindInt   Kind = iota // an exact integer of any size, in Int
	KindFloat             // a finite float64, in Float
	KindText              // expr's expression, in Text
)

// Arg is one operand. Integers stay exact (math/big) so that big values
// travel without rounding; anything with a point or an exponent is a float64.
type Arg struct {
	Kind  Kind
	Int   *big.Int // KindInt; treat as read-only, results never alias it
	Float float64  // KindFloat
	Text  string   // KindText
}

// String returns the argument as Parse reads it back in text form: a float
// always shows a point or an exponent, so it stays a float.
func (a Arg) String() string {
	switch a.Kind {
	case KindText:
		return a.Text
	case KindFloat:
		b := appendFloat(nil, a.Float)
		if !strings.ContainsAny(string(b), ".e") {
			b = append(b, ".0"...)
		}
		return string(b)
	}
	return strings.Trim(string(a.num().appendJSON(nil)), `"`)
}

// appendJSON appends the argument as it is echoed in a reply: numbers as JSON
// numbers, integers beyond ±2^53 and text as JSON strings.
func (a Arg) appendJSON(dst []byte) []byte {
	if a.Kind == KindText {
		return jsonstr.Append(dst, a.Text)
	}
	return a.num().appendJSON(dst)
}

func (a Arg) num() num {
	if a.Kind == KindInt {
		return num{i: a.Int}
	}
	return num{f: a.Float}
}

// num is an operand or result: an exact integer when i is non-nil, else the
// float64 f. Values are never mutated once made; operations allocate.
type num struct {
	i *big.Int
	f float64
}

func intNum(i *big.Int) num      { return num{i: i} }
func floatNum(f float64) num     { return num{f: f} }
func (n num) isZero() bool       { return (n.i != nil && n.i.Sign() == 0) || (n.i == nil && n.f == 0) }
func bothInt(a, b num) bool      { return a.i != nil && b.i != nil }
func bad(msg string) *wire.Error { return wire.NewError(wire.CodeBadRequest, msg) }

func (n num) arg() Arg {
	if n.i != nil {
		return Arg{Kind: KindInt, Int: n.i}
	}
	return Arg{Kind: KindFloat, Float: n.f}
}

// float converts to float64, rounding to nearest; huge integers become ±Inf,
// which the finiteness check of every float result then reports.
func (n num) float() float64 {
	if n.i == nil {
		return n.f
	}
	if n.i.IsInt64() {
		return float64(n.i.Int64())
	}
	f, _ := new(big.Float).SetInt(n.i).Float64()
	return f
}

// maxExact is 2^53: integers up to it in magnitude are exact in a float64,
// so every JSON decoder reads them back unchanged.
const maxExact = 1 << 53

// appendJSON appends n as a JSON value: an integer beyond ±2^53 as a decimal
// string, anything else as a number. Floats use the shortest form that reads
// back exactly, like encoding/json.
func (n num) appendJSON(dst []byte) []byte {
	if n.i != nil {
		if n.i.IsInt64() {
			if v := n.i.Int64(); v >= -maxExact && v <= maxExact {
				return strconv.AppendInt(dst, v, 10)
			}
		}
		dst = append(dst, '"')
		dst = n.i.Append(dst, 10)
		return append(dst, '"')
	}
	return appendFloat(dst, n.f)
}

// appendFloat formats a finite float the way encoding/json does, with -0
// shown as 0 because nobody asked for a signed zero.
func appendFloat(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 -> e-9, as encoding/json does.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// parseNumber reads a decimal literal: [+-] digits [. digits] [e [+-] digits].
// Without a point or exponent it is an exact integer, else a float64. On
// failure it returns the reason, worded to follow the quoted literal.
func parseNumber(s string) (num, string) {
	if len(s) > MaxNumberLen {
		return num{}, "is too long (max " + strconv.Itoa(MaxNumberLen) + " characters)"
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		digits++
	}
	isFloat := false
	if i < len(s) && s[i] == '.' {
		isFloat = true
		for i++; i < len(s) && isDigit(s[i]); i++ {
			digits++
		}
	}
	if digits > 0 && i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		isFloat = true
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp++
		}
		if exp == 0 {
			digits = 0
		}
	}
	if digits == 0 || i != len(s) {
		switch strings.ToLower(strings.TrimLeft(s, "+-")) {
		case "inf", "infinity", "nan":
			return num{}, "is not a finite number"
		}
		return num{}, "is not a number"
	}
	if !isFloat {
		z, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return num{}, "is not a number"
		}
		return intNum(z), ""
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return num{}, "is out of range"
	}
	return floatNum(f), ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
