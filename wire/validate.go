package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxHeartbeatSize bounds a heartbeat's payload in bytes. A worker's is
// about 300; a dispatcher refuses larger ones before decoding them, so
// that no heartbeat costs it more than this to read, keep or log.
const MaxHeartbeatSize = 4096

// Reasons a dispatcher refuses a heartbeat; match them with errors.Is.
var (
	ErrHeartbeatTooLarge = errors.New("wire: heartbeat larger than " + strconv.Itoa(MaxHeartbeatSize) + " bytes")
	ErrBadWorkerID       = errors.New("wire: worker id is not a subject token of up to 64 printable characters")
	ErrIDNotSubject      = errors.New("wire: worker id is not the last token of the heartbeat's subject")
	ErrForeignSubject    = errors.New("wire: heartbeat's subject field is not <prefix>.worker.<id>")
)

// CheckHeartbeat tells whether hb, received on subject, may enter a
// dispatcher's table: its id must be a valid id and the last token of
// subject (<prefix>.heartbeat.<id>), and its subject field, if any, must
// be <prefix>.worker.<id>. A dispatcher forwards to the subject derived
// from the id, never to one taken from a payload. The errors say what is
// wrong without quoting more than 64 bytes of what came in.
func (s Subjects) CheckHeartbeat(subject string, hb Heartbeat) error {
	if !ValidID(hb.ID) {
		return fmt.Errorf("%w: %s", ErrBadWorkerID, QuoteCut(hb.ID, 64))
	}
	p := s.Root()
	tok, ok := strings.CutPrefix(subject, p+".heartbeat.")
	if !ok || tok != hb.ID {
		return fmt.Errorf("%w: id %q", ErrIDNotSubject, hb.ID)
	}
	if hb.Subject == "" {
		return nil
	}
	// hb.Subject == p + ".worker." + hb.ID, without building the string:
	// this runs for every heartbeat of every worker.
	const mid = ".worker."
	sub := hb.Subject
	if len(sub) != len(p)+len(mid)+len(hb.ID) || sub[:len(p)] != p ||
		sub[len(p):len(p)+len(mid)] != mid || sub[len(p)+len(mid):] != hb.ID {
		return fmt.Errorf("%w: %s for id %q", ErrForeignSubject, QuoteCut(sub, 64), hb.ID)
	}
	return nil
}

// QuoteCut quotes s as strconv.Quote does, after cutting it to at most max
// bytes at a rune boundary; a cut string says how long it was. For
// error messages that name something that came from outside.
func QuoteCut(s string, max int) string {
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:cutAt(s, max)]) + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// cutAt is the largest index at most max, and at most len(s), that does
// not split a UTF-8 sequence of s.
func cutAt(s string, max int) int {
	if max >= len(s) {
		return len(s)
	}
	if max < 0 {
		return 0
	}
	// A rune is at most 4 bytes: look back no further than 3.
	for i := max; i > 0 && i > max-4; i-- {
		if s[i]&0xC0 != 0x80 { // not a continuation byte: a rune starts here
			return i
		}
	}
	return max // not UTF-8 anyway; any cut will do
}

// Bounds on the headers of a request that a role keeps while it holds the
// request, in bytes. A request beyond them is refused with a 400: an id
// is repeated in every progress message and log line about its request,
// and a request is kept, headers and all, until its reply.
const (
	MaxRequestIDLen = 128 // Calc-Request-Id: a client's are 36
	MaxClientLen    = 128 // Calc-Client
	MaxNumberLen    = 20  // Calc-Timeout-Ms, Calc-Hedge-Ms, Calc-Progress: an int64's digits
	// MaxHeaderBytes bounds all of a request's headers, names and values.
	MaxHeaderBytes = 8 << 10
)

// ErrHeaderTooLong reports a request header beyond its bound.
var ErrHeaderTooLong = errors.New("wire: request header too long")

// headerBound is the bound of a request header a role keeps, 0 for one it
// does not read.
func headerBound(key string) int {
	switch key {
	case HdrRequestID:
		return MaxRequestIDLen
	case HdrClient:
		return MaxClientLen
	case HdrTimeout, HdrHedge, HdrProgress:
		return MaxNumberLen
	case HdrClientReply:
		return maxReplySubject
	}
	return 0
}

// CheckHeader tells whether value is within the bound of request header
// key; the error names the header and its length, not its value.
func CheckHeader(key, value string) error {
	if max := headerBound(key); max > 0 && len(value) > max {
		return fmt.Errorf("%w: %s of %d bytes (at most %d)", ErrHeaderTooLong, key, len(value), max)
	}
	return nil
}

// CheckRequestHeaders tells whether a request's headers h are within
// their bounds: each that a role keeps (CheckHeader, every value), and all
// of them together MaxHeaderBytes.
func CheckRequestHeaders(h map[string][]string) error {
	n := 0
	for k, vs := range h {
		n += len(k)
		for _, v := range vs {
			if err := CheckHeader(k, v); err != nil {
				return err
			}
			n += len(v)
		}
	}
	if n > MaxHeaderBytes {
		return fmt.Errorf("%w: %d bytes of headers (at most %d)", ErrHeaderTooLong, n, MaxHeaderBytes)
	}
	return nil
}

// Millis is a count of milliseconds from a header as a duration, clamped
// to max: Calc-Timeout-Ms of 9.2e12 and more would overflow a Duration.
// A value of 0 or less, or not a number, is 0.
func Millis(v string, max time.Duration) time.Duration {
	if v == "" {
		return 0 // ParseInt's error would allocate, and this is the hot path
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && ms > 0 {
		return max // beyond an int64: as large as allowed
	}
	if err != nil || ms <= 0 {
		return 0
	}
	if ms >= int64(max/time.Millisecond) {
		return max
	}
	return time.Duration(ms) * time.Millisecond
}
