package wire

import (
	"encoding/json"
	"math"
	"unicode/utf8"
)

// DecodeHeartbeat parses a heartbeat as encoding/json would.
//
// A dispatcher decodes one heartbeat per worker per interval, so with a
// large fleet this is its steady cost, and reflection-driven decoding
// dominated it in profiles. The flat object workers send is scanned here without
// reflection; anything the scanner does not expect (escapes, unknown or
// differently cased keys, null, nesting) goes to encoding/json instead,
// so the result is always encoding/json's.
func DecodeHeartbeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if decodeHeartbeatFast(data, &hb) {
		return hb, nil
	}
	hb = Heartbeat{}
	err := json.Unmarshal(data, &hb)
	return hb, err
}

// decodeHeartbeatFast fills hb from data and reports whether it could;
// on false, hb holds partial values and must be discarded.
func decodeHeartbeatFast(data []byte, hb *Heartbeat) bool {
	s := scanner{b: data}
	if !s.byte('{') {
		return false
	}
	if s.byte('}') {
		return s.end()
	}
	for {
		key, ok := s.str()
		if !ok || !s.byte(':') {
			return false
		}
		if !s.field(key, hb) {
			return false
		}
		if s.byte(',') {
			continue
		}
		return s.byte('}') && s.end()
	}
}

// scanner reads the JSON subset that DecodeHeartbeat's fast path accepts.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c, after any white space, if it comes next.
func (s *scanner) byte(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// str reads a string without escapes or control characters, in valid
// UTF-8; it returns the raw bytes between the quotes.
func (s *scanner) str() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// num reads a JSON integer, an optional minus and then 0 or digits not
// starting with 0, into its sign and magnitude. Fractions, exponents and
// magnitudes beyond uint64 are left to encoding/json.
func (s *scanner) num() (neg bool, mag uint64, ok bool) {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '-' {
		neg = true
		s.i++
	}
	start := s.i
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
		d := uint64(s.b[s.i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			return false, 0, false
		}
		mag = mag*10 + d
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return false, 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return false, 0, false
		}
	}
	return neg, mag, true
}

func (s *scanner) uint(dst *uint64) bool {
	neg, mag, ok := s.num()
	if !ok || neg { // encoding/json refuses even -0 here
		return false
	}
	*dst = mag
	return true
}

func (s *scanner) int(dst *int64) bool {
	neg, mag, ok := s.num()
	switch {
	case !ok:
		return false
	case neg && mag <= 1<<63:
		*dst = int64(-mag) // two's complement: -(1<<63) wraps to itself
	case !neg && mag <= math.MaxInt64:
		*dst = int64(mag)
	default:
		return false
	}
	return true
}

// field reads the value of key into hb; keys are matched exactly, so that
// encoding/json's case-insensitive matching stays its own business.
func (s *scanner) field(key []byte, hb *Heartbeat) bool {
	switch string(key) {
	case "id", "subject", "state", "version", "host":
		v, ok := s.str()
		if !ok {
			return false
		}
		switch string(key) {
		case "id":
			hb.ID = string(v)
		case "subject":
			hb.Subject = string(v)
		case "state":
			hb.State = string(v)
		case "version":
			hb.Version = string(v)
		case "host":
			hb.Host = string(v)
		}
		return true
	case "seq":
		return s.uint(&hb.Seq)
	case "served":
		return s.uint(&hb.Served)
	case "errors":
		return s.uint(&hb.Errors)
	case "interval_ms":
		return s.int(&hb.IntervalMS)
	case "inflight":
		return s.int(&hb.Inflight)
	case "progress_ms":
		return s.int(&hb.ProgressMS)
	case "concurrency":
		var n int64
		if !s.int(&n) || int64(int(n)) != n {
			return false
		}
		hb.Concurrency = int(n)
		return true
	case "started_at":
		s.ws()
		start := s.i
		if _, ok := s.str(); !ok {
			return false
		}
		// time.Time's own JSON decoding, quotes included: the same
		// strict RFC 3339 that encoding/json would apply.
		return hb.StartedAt.UnmarshalJSON(s.b[start:s.i]) == nil
	}
	return false
}
