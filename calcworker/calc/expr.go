package calc

import (
	"context"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bilancia/bilancia/wire"
)

// The expression language, by recursive descent:
//
//	sum     = product { ("+" | "-") product }
//	product = unary { ("*" | "/" | "%") unary }
//	unary   = ("-" | "+") unary | power
//	power   = primary [ ("^" | "**") unary ]
//	primary = number | "(" sum ")"
//
// ^ is right-associative and binds tighter than a unary sign on its left, as
// in mathematics: -2^2 = -4, 2^3^2 = 512, 2^-1 = 0.5. Every path of the
// recursion goes through unary, which counts the depth, so no input can
// exhaust the stack.

// exprParser evaluates while it parses; there is no tree to allocate.
type exprParser struct {
	ctx   context.Context // checked before each operation: a long expression stops at its deadline
	s     string
	pos   int
	depth int
	check bool        // syntax only: compute nothing
	fail  *wire.Error // first arithmetic error; later values are not computed
}

// evalExpr parses s and, unless check is set, evaluates it, until ctx
// ends. A syntax error anywhere wins over an arithmetic one, so "1/0 +"
// says what is wrong with the text first.
func evalExpr(ctx context.Context, s string, check bool) (num, *wire.Error) {
	if len(s) > MaxExprLen {
		return num{}, bad("expr: expression too long (max " + strconv.Itoa(MaxExprLen) + " bytes)")
	}
	p := exprParser{ctx: ctx, s: s, check: check}
	v, e := p.sum()
	if e != nil {
		return num{}, e
	}
	p.space()
	if p.pos < len(p.s) {
		return num{}, p.unexpected()
	}
	if p.fail != nil {
		return num{}, p.fail
	}
	return v, nil
}

// space skips white space, Unicode included, as the text form does around
// the expression: whatever separates words there may separate tokens here.
func (p *exprParser) space() {
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f':
			p.pos++
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(p.s[p.pos:])
			if !unicode.IsSpace(r) {
				return
			}
			p.pos += size
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (p *exprParser) peek() byte {
	p.space()
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

// position is 1-based and counts characters, for people.
func (p *exprParser) position(at int) string {
	return strconv.Itoa(utf8.RuneCountInString(p.s[:at]) + 1)
}

func (p *exprParser) unexpected() *wire.Error {
	if p.pos >= len(p.s) {
		return bad("expr: unexpected end of expression")
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return bad("expr: unexpected " + strconv.Quote(string(r)) + " at position " + p.position(p.pos))
}

// apply computes a op b unless only checking or already failed.
func (p *exprParser) apply(op byte, a, b num) num {
	if p.check || p.fail != nil {
		return num{}
	}
	if err := p.ctx.Err(); err != nil {
		p.fail = ctxError(err)
		return num{}
	}
	var r num
	var e *wire.Error
	switch op {
	case '+':
		r, e = addNum(a, b)
	case '-':
		r, e = subNum(a, b)
	case '*':
		r, e = mulNum(a, b)
	case '/':
		r, e = divNum(a, b)
	case '%':
		r, e = modNum(a, b)
	case '^':
		r, e = powNum(a, b)
	}
	if e != nil {
		p.fail = prefix("expr", e)
	}
	return r
}

func (p *exprParser) sum() (num, *wire.Error) {
	v, e := p.product()
	for e == nil {
		op := p.peek()
		if op != '+' && op != '-' {
			break
		}
		p.pos++
		var w num
		if w, e = p.product(); e == nil {
			v = p.apply(op, v, w)
		}
	}
	return v, e
}

func (p *exprParser) product() (num, *wire.Error) {
	v, e := p.unary()
	for e == nil {
		op := p.peek()
		if op != '*' && op != '/' && op != '%' {
			break
		}
		p.pos++
		var w num
		if w, e = p.unary(); e == nil {
			v = p.apply(op, v, w)
		}
	}
	return v, e
}

func (p *exprParser) unary() (num, *wire.Error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxExprDepth {
		return num{}, bad("expr: nested too deeply (max " + strconv.Itoa(MaxExprDepth) + " levels)")
	}
	switch p.peek() {
	case '-':
		p.pos++
		v, e := p.unary()
		if e != nil || p.check || p.fail != nil {
			return num{}, e
		}
		return negNum(v), nil
	case '+':
		p.pos++
		return p.unary()
	}
	return p.power()
}

func (p *exprParser) power() (num, *wire.Error) {
	v, e := p.primary()
	if e != nil {
		return v, e
	}
	switch {
	case p.peek() == '^':
		p.pos++
	case strings.HasPrefix(p.s[p.pos:], "**"):
		p.pos += 2
	default:
		return v, nil
	}
	w, e := p.unary()
	if e != nil {
		return num{}, e
	}
	return p.apply('^', v, w), nil
}

func (p *exprParser) primary() (num, *wire.Error) {
	c := p.peek()
	switch {
	case c == '(':
		open := p.pos
		p.pos++
		v, e := p.sum()
		if e != nil {
			return num{}, e
		}
		if p.peek() != ')' {
			if p.pos < len(p.s) {
				return num{}, p.unexpected()
			}
			return num{}, bad("expr: missing \")\" for the \"(\" at position " + p.position(open))
		}
		p.pos++
		return v, nil
	case isDigit(c) || c == '.':
		return p.number()
	}
	return num{}, p.unexpected()
}

// number scans digits [. digits] [e [+-] digits] and reads it exactly as
// an argument would be read.
func (p *exprParser) number() (num, *wire.Error) {
	start := p.pos
	s := p.s
	i := p.pos
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && isDigit(s[j]) {
			for i = j; i < len(s) && isDigit(s[i]); i++ {
			}
		}
	}
	p.pos = i
	lit := s[start:i]
	n, why := parseNumber(lit)
	if why != "" {
		return num{}, bad("expr: number " + quote(lit) + " at position " + p.position(start) + " " + why)
	}
	return n, nil
}
