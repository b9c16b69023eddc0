package dispatcher

import (
	"context"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/bilancia/bilancia/internal/loglimit"
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
	maxLoggedAttr    = 512 // any string or error in an event line: the backstop
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

// logLimit lets one kind of warning through at most once a second; the
// lines held back in between are counted, and the next line says how
// many. A flood of bad messages then costs the log a line per second. The
// zero value is ready to use.
type logLimit struct{ loglimit.Limit }

// allow tells whether a line may be written at now, and how many were held
// back since the last one.
func (l *logLimit) allow(now time.Time) (held int, ok bool) { return l.Allow(now) }

// sourceLimit is a logLimit for each source of a kind of line (a worker
// id, a client's name), so that one source's flood does not hide
// another's line; the sources beyond loglimit.MaxSources share one.
type sourceLimit struct{ loglimit.PerSource }

// allow tells whether a line about src may be written at now, and how
// many about it were held back since the last one.
func (l *sourceLimit) allow(src string, now time.Time) (held int, ok bool) {
	return l.Allow(src, now)
}

// warnLimits are the rate-limited lines, one limit per kind, or per kind
// and source.
type warnLimits struct {
	tableFull, conflict, contradiction logLimit
	badHeartbeat                       sourceLimit // by the id its subject names
	hello, goodbye                     sourceLimit // by the client's claimed name
}

// boundLogger returns l with every string and error of its lines, and
// the message, cut to maxLoggedAttr: the backstop for a field from
// outside that no call site cut (a 600 KB request id in a "reply failed"
// line). Lines within bounds, nearly all, go through unchanged.
func boundLogger(l *slog.Logger) *slog.Logger {
	return slog.New(boundedHandler{l.Handler()})
}

type boundedHandler struct{ slog.Handler }

func (h boundedHandler) Handle(ctx context.Context, r slog.Record) error {
	long := len(r.Message) > maxLoggedAttr
	r.Attrs(func(a slog.Attr) bool {
		long = long || tooLong(a.Value)
		return !long
	})
	if !long {
		return h.Handler.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, clip(r.Message, maxLoggedAttr), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if tooLong(a.Value) {
			s := a.Value.String()
			if err, ok := a.Value.Any().(error); ok {
				s = err.Error()
			}
			a.Value = slog.StringValue(clip(s, maxLoggedAttr))
		}
		out.AddAttrs(a)
		return true
	})
	return h.Handler.Handle(ctx, out)
}

// tooLong tells whether v is a string or an error longer than
// maxLoggedAttr.
func tooLong(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindString:
		return len(v.String()) > maxLoggedAttr
	case slog.KindAny:
		err, ok := v.Any().(error)
		return ok && len(err.Error()) > maxLoggedAttr
	}
	return false
}

func (h boundedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return boundedHandler{h.Handler.WithAttrs(as)}
}

func (h boundedHandler) WithGroup(name string) slog.Handler {
	return boundedHandler{h.Handler.WithGroup(name)}
}
