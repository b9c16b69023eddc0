package dispatcher

import (
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// What comes from outside (a client's headers and hello, a heartbeat)
// reaches the log cut to a bound and marked where it was cut, so that no
// message can write more than a line's worth. Escaping is the handlers'
// business: slog's JSON handler and the request line (jsonstr) escape
// control characters and U+2028/U+2029, slog's text handler quotes them.

// Bounds on logged fields from outside, in bytes.
const (
	maxLoggedField   = 128 // ids, names, hosts, addresses
	maxLoggedCommand = 200 // a request's payload
	maxLoggedError   = 256 // an error about something that came in
)

// clip returns s cut to at most max bytes at a rune boundary, with a
// marker saying how long it was; s itself when it fits, without copying.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:cutAt(s, max)] + cutMark(len(s))
}

// cutMark ends a cut field: "…[N bytes]", N its length before the cut.
func cutMark(n int) string { return "…[" + strconv.Itoa(n) + " bytes]" }

// cutAt is the largest index at most max that does not split a UTF-8
// sequence of s; s is longer than max.
func cutAt[S string | []byte](s S, max int) int {
	for i := max; i > 0 && i > max-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return max // not UTF-8 there anyway
}

// warnEvery is how often a rate-limited warning may be written.
const warnEvery = time.Second

// logLimit lets one kind of warning through at most once per warnEvery;
// the lines held back in between are counted, and the next line says how
// many. A flood of bad messages then costs the log a line per second. The
// zero value is ready to use.
type logLimit struct {
	mu   sync.Mutex
	next time.Time
	held int
}

// allow tells whether a line may be written at now, and how many were held
// back since the last one.
func (l *logLimit) allow(now time.Time) (held int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.held++
		return 0, false
	}
	held, l.held = l.held, 0
	l.next = now.Add(warnEvery)
	return held, true
}

// warnLimits are the rate-limited warnings, one limit per kind.
type warnLimits struct {
	badHeartbeat, tableFull, conflict, contradiction logLimit
}
