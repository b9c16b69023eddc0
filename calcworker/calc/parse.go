package calc

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/bilancia/bilancia/wire"
)

// Parse reads a request in text form ("add 2 3", "expr (2+3)*4^2") or JSON
// form ({"op":"add","args":[2,3]}); a payload that starts with "{" is JSON.
// maxPayload bounds its size in bytes (0 = DefaultMaxPayload). The error, if
// any, is a *wire.Error: 413 for a payload that is too large, else 400.
//
// Parse checks everything that does not need computing: the op, the arity,
// that numbers are numbers and that an expression is well formed.
func Parse(payload []byte, maxPayload int) (*Command, error) {
	c, e := parse(payload, maxPayload)
	if e != nil {
		return nil, e
	}
	return c, nil
}

func parse(payload []byte, maxPayload int) (*Command, *wire.Error) {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	if len(payload) > maxPayload {
		return nil, wire.NewError(wire.CodeTooLarge,
			"request too large: "+strconv.Itoa(len(payload))+" bytes (max "+strconv.Itoa(maxPayload)+")")
	}
	if !utf8.Valid(payload) {
		return nil, bad("request is not valid UTF-8")
	}
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 {
		return nil, bad("empty request")
	}
	if payload[0] == '{' {
		return parseJSON(payload)
	}
	return parseText(string(payload))
}

// cutSpace splits s at its first white space.
func cutSpace(s string) (head, tail string) {
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// parseText reads "op arg arg ..."; for expr the whole rest is the expression.
func parseText(s string) (*Command, *wire.Error) {
	name, rest := cutSpace(s)
	spec := lookup(name)
	if spec == nil {
		return nil, unknownOp(name)
	}
	if spec.text {
		return textCommand(spec, strings.TrimSpace(rest))
	}
	args := make([]Arg, 0, 4)
	for {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if rest == "" {
			break
		}
		if len(args) == MaxArgs {
			return nil, tooManyArgs()
		}
		var tok string
		tok, rest = cutSpace(rest)
		a, e := numberArg(len(args), tok)
		if e != nil {
			return nil, e
		}
		args = append(args, a)
	}
	if e := checkArity(spec, len(args)); e != nil {
		return nil, e
	}
	return &Command{Op: spec.Name, Args: args}, nil
}

func tooManyArgs() *wire.Error {
	return bad("too many arguments (max " + strconv.Itoa(MaxArgs) + ")")
}

func numberArg(i int, s string) (Arg, *wire.Error) {
	n, why := parseNumber(s)
	if why != "" {
		return Arg{}, bad(argPrefix(i) + quote(s) + " " + why)
	}
	return n.arg(), nil
}

// textCommand builds expr's command after checking the expression's syntax,
// so that a malformed expression is refused before any work is done.
func textCommand(spec *opSpec, text string) (*Command, *wire.Error) {
	if text == "" {
		return nil, checkArity(spec, 0)
	}
	if _, e := evalExpr(context.Background(), text, true); e != nil {
		return nil, e
	}
	return &Command{Op: spec.Name, Args: []Arg{{Kind: KindText, Text: text}}}, nil
}

// jsonRequest is the JSON form. Fields stay raw so that each gets its own
// clear message rather than encoding/json's Go-flavoured one.
type jsonRequest struct {
	Op   json.RawMessage `json:"op"`
	Args json.RawMessage `json:"args"`
}

func parseJSON(payload []byte) (*Command, *wire.Error) {
	var req jsonRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return nil, bad("malformed JSON: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if len(req.Op) == 0 || string(req.Op) == "null" {
		return nil, bad(`missing "op"`)
	}
	var name string
	if err := json.Unmarshal(req.Op, &name); err != nil {
		return nil, bad(`"op" must be a string`)
	}
	spec := lookup(strings.TrimSpace(name))
	if spec == nil {
		return nil, unknownOp(name)
	}
	var raws []json.RawMessage
	if len(req.Args) > 0 && string(req.Args) != "null" {
		if req.Args[0] != '[' {
			return nil, bad(`"args" must be an array, e.g. {"op":"add","args":[2,3]}`)
		}
		if err := json.Unmarshal(req.Args, &raws); err != nil {
			return nil, bad(`"args" must be an array`)
		}
	}
	if len(raws) > MaxArgs {
		return nil, tooManyArgs()
	}
	if spec.text {
		if len(raws) != 1 {
			return nil, checkArity(spec, len(raws))
		}
		text, ok := jsonText(raws[0])
		if !ok {
			return nil, bad(spec.Name + `: the argument must be a string holding the expression, e.g. {"op":"expr","args":["(2+3)*4^2"]}`)
		}
		return textCommand(spec, strings.TrimSpace(text))
	}
	if e := checkArity(spec, len(raws)); e != nil {
		return nil, e
	}
	args := make([]Arg, len(raws))
	for i, raw := range raws {
		s, ok := jsonText(raw)
		if !ok {
			return nil, bad(argPrefix(i) + "expected a number, got " + quote(string(raw)))
		}
		a, e := numberArg(i, strings.TrimSpace(s))
		if e != nil {
			return nil, e
		}
		args[i] = a
	}
	return &Command{Op: spec.Name, Args: args}, nil
}

// jsonText returns the text of a JSON string or number: numbers may come as
// strings so that big integers survive JSON decoders that use float64.
func jsonText(raw json.RawMessage) (string, bool) {
	switch {
	case len(raw) == 0:
		return "", false
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	case raw[0] == '-' || isDigit(raw[0]):
		return string(raw), true
	}
	return "", false
}
