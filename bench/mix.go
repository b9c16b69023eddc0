package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/bilancia/bilancia/calcworker/calc"
)

// ErrBadMix wraps every error ParseMix returns.
var ErrBadMix = errors.New("bench: bad mix")

// DefaultMix is the mix when none is given: fast additions only.
const DefaultMix = "add:100"

// Mix is a weighted set of command templates. A template is an op and,
// optionally, fixed arguments in text form: "sleep 5", "fib 90". A template
// of an op alone gets fresh random operands for every request ("add" sends
// "add 17 -403"), chosen so that the request always succeeds.
type Mix struct {
	entries []mixEntry
	total   float64
}

type mixEntry struct {
	template string
	weight   float64
	cum      float64 // cumulative weight up to and including this entry
	fixed    []byte  // the payload, when the template has its arguments
	op       string  // canonical op, when the operands are random
}

// ParseMix reads a mix: comma-separated entries "template:weight", e.g.
// "add:90,sleep 5:10". The weight may be left out (it is then 1); weights
// are relative, need not add up to 100, and must be positive. Templates use
// the text form of requests (not JSON); sleep and spin need their
// milliseconds in the template.
func ParseMix(s string) (*Mix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty; want entries like %q", ErrBadMix, "add:90,sleep 5:10")
	}
	m := &Mix{}
	for i, raw := range strings.Split(s, ",") {
		e, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d %q: %v", ErrBadMix, i+1, strings.TrimSpace(raw), err)
		}
		m.total += e.weight
		e.cum = m.total
		m.entries = append(m.entries, e)
	}
	return m, nil
}

// MustParseMix is ParseMix for mixes known to be valid; it panics otherwise.
func MustParseMix(s string) *Mix {
	m, err := ParseMix(s)
	if err != nil {
		panic(err)
	}
	return m
}

func parseEntry(raw string) (mixEntry, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return mixEntry{}, errors.New("empty entry (two commas in a row, or a trailing comma?)")
	}
	e := mixEntry{template: raw, weight: 1}
	if i := strings.LastIndexByte(raw, ':'); i >= 0 {
		e.template = strings.TrimSpace(raw[:i])
		w := strings.TrimSpace(raw[i+1:])
		if w == "" {
			return mixEntry{}, errors.New("missing weight after ':'")
		}
		f, err := strconv.ParseFloat(w, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return mixEntry{}, fmt.Errorf("weight %q is not a number", w)
		}
		if f <= 0 {
			return mixEntry{}, fmt.Errorf("weight %q must be positive", w)
		}
		e.weight = f
	}
	if e.template == "" {
		return mixEntry{}, errors.New("missing command before ':'")
	}
	fields := strings.Fields(e.template)
	e.template = strings.Join(fields, " ")
	op := canonicalOp(fields[0])
	if op == "" {
		return mixEntry{}, fmt.Errorf("unknown op %q (ops: %s)", fields[0], strings.Join(opNames(), ", "))
	}
	if len(fields) == 1 {
		if _, ok := randomArgs[op]; !ok {
			ex := op + " 5"
			return mixEntry{}, fmt.Errorf("%s needs its argument in the template, e.g. %q", op, ex)
		}
		e.op = op
		return e, nil
	}
	if _, err := calc.Parse([]byte(e.template), 0); err != nil {
		return mixEntry{}, fmt.Errorf("%q is not a valid request: %v", e.template, errMessage(err))
	}
	e.fixed = []byte(e.template)
	return e, nil
}

func errMessage(err error) string {
	s := err.Error()
	// A *wire.Error prints its code first; the message is what helps here.
	if i := strings.IndexByte(s, ' '); i == 3 {
		return s[i+1:]
	}
	return s
}

// canonicalOp returns the canonical name of op or an alias, or "".
func canonicalOp(name string) string {
	name = strings.ToLower(name)
	for _, o := range calc.Ops() {
		if o.Name == name {
			return o.Name
		}
		for _, a := range o.Aliases {
			if a == name {
				return o.Name
			}
		}
	}
	return ""
}

func opNames() []string {
	var out []string
	for _, o := range calc.Ops() {
		out = append(out, o.Name)
	}
	return out
}

// randomArgs draws operands for an op given without arguments; every draw
// makes a request that succeeds.
var randomArgs = map[string]func(r *rand.Rand, b []byte) []byte{
	"add":     twoInts,
	"sub":     twoInts,
	"mul":     twoInts,
	"div":     intAndNonZero,
	"mod":     intAndNonZero,
	"pow":     func(r *rand.Rand, b []byte) []byte { return ints(b, int64(r.IntN(41)-20), int64(r.IntN(16))) },
	"sqrt":    func(r *rand.Rand, b []byte) []byte { return ints(b, r.Int64N(1_000_000)) },
	"fact":    func(r *rand.Rand, b []byte) []byte { return ints(b, r.Int64N(31)) },
	"fib":     func(r *rand.Rand, b []byte) []byte { return ints(b, r.Int64N(101)) },
	"isprime": func(r *rand.Rand, b []byte) []byte { return ints(b, r.Int64N(1_000_000_000)) },
	"expr": func(r *rand.Rand, b []byte) []byte {
		b = append(b, " ("...)
		b = strconv.AppendInt(b, randInt(r), 10)
		b = append(b, '+')
		b = strconv.AppendInt(b, randInt(r), 10)
		b = append(b, ")*"...)
		b = strconv.AppendInt(b, int64(r.IntN(100)), 10)
		b = append(b, '-')
		return strconv.AppendInt(b, int64(r.IntN(100)), 10)
	},
}

func randInt(r *rand.Rand) int64 { return r.Int64N(2001) - 1000 }

func twoInts(r *rand.Rand, b []byte) []byte { return ints(b, randInt(r), randInt(r)) }

func intAndNonZero(r *rand.Rand, b []byte) []byte {
	d := r.Int64N(999) + 1
	if r.IntN(2) == 0 {
		d = -d
	}
	return ints(b, randInt(r), d)
}

func ints(b []byte, ns ...int64) []byte {
	for _, n := range ns {
		b = append(b, ' ')
		b = strconv.AppendInt(b, n, 10)
	}
	return b
}

// Len is the number of entries.
func (m *Mix) Len() int { return len(m.entries) }

// Template returns entry i's template as given (whitespace normalized).
func (m *Mix) Template(i int) string { return m.entries[i].template }

// String returns the mix in the form ParseMix reads.
func (m *Mix) String() string {
	parts := make([]string, len(m.entries))
	for i, e := range m.entries {
		parts[i] = e.template + ":" + strconv.FormatFloat(e.weight, 'f', -1, 64)
	}
	return strings.Join(parts, ",")
}

// Next draws an entry by weight and returns its index and a payload for it.
// The payload is fresh (or a fixed template, which must not be modified).
// r is the caller's: Next is safe for concurrent use with distinct sources.
func (m *Mix) Next(r *rand.Rand) (int, []byte) {
	i := 0
	if len(m.entries) > 1 {
		x := r.Float64() * m.total
		for i < len(m.entries)-1 && x >= m.entries[i].cum {
			i++
		}
	}
	e := &m.entries[i]
	if e.fixed != nil {
		return i, e.fixed
	}
	b := make([]byte, 0, 32)
	b = append(b, e.op...)
	return i, randomArgs[e.op](r, b)
}
