package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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
