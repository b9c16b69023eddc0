package wire

import (
	"fmt"
	"strconv"
	"time"
)

// Deadline names the deadline that ran out, for a 504's message: a user
// reading it learns which one it was and what raises it.
type Deadline int

const (
	// DeadlineClient is the client's own wait for a reply (bilancia client
	// --timeout, or the deadline of the caller's context).
	DeadlineClient Deadline = iota
	// DeadlineRequest is the deadline the request carried in
	// Calc-Timeout-Ms, which a dispatcher keeps.
	DeadlineRequest
	// DeadlineDefault is a dispatcher's deadline for a request without
	// Calc-Timeout-Ms (bilancia dispatcher --request-timeout).
	DeadlineDefault
	// DeadlineCapped is a dispatcher's cap on the deadline a request may
	// ask for (bilancia dispatcher --max-request-timeout).
	DeadlineCapped
)

// DeadlineError is the 504 answered when deadline d, of length limit,
// ran out after tries sends (client) or attempts (dispatcher): which
// deadline it was, and the flag or header that raises it.
func DeadlineError(d Deadline, limit time.Duration, tries int) *Error {
	limit = limit.Round(time.Millisecond)
	var msg string
	switch d {
	case DeadlineClient:
		msg = fmt.Sprintf("no reply within the client's deadline of %v (%s); raise it with bilancia client --timeout",
			limit, count(tries, "send"))
	case DeadlineRequest:
		msg = fmt.Sprintf("the request's deadline of %v (%s) passed after %s; ask for more in %s (bilancia client --timeout)",
			limit, HdrTimeout, count(tries, "attempt"), HdrTimeout)
	case DeadlineDefault:
		msg = fmt.Sprintf("the dispatcher's deadline of %v for a request without %s passed after %s; send %s, or raise bilancia dispatcher --request-timeout",
			limit, HdrTimeout, count(tries, "attempt"), HdrTimeout)
	default:
		msg = fmt.Sprintf("the dispatcher's longest deadline, %v, passed after %s; raise bilancia dispatcher --max-request-timeout",
			limit, count(tries, "attempt"))
	}
	return NewError(CodeDeadline, msg)
}

// WorkerDeadline is the 504 of a worker whose computation ran past the
// time it was given (Calc-Timeout-Ms on the forward).
const WorkerDeadline = "deadline passed on the worker: the request's own (" + HdrTimeout +
	", bilancia client --timeout) or, without one, the dispatcher's --request-timeout"

// DispatcherDeadline is the 504 of a dispatcher whose request ran out of
// time after attempts: header is the request's Calc-Timeout-Ms ("" when it
// had none) and limit the deadline the dispatcher applied.
func DispatcherDeadline(header string, limit time.Duration, attempts int) *Error {
	ms, err := strconv.ParseInt(header, 10, 64)
	switch {
	case err != nil || ms <= 0:
		return DeadlineError(DeadlineDefault, limit, attempts)
	case time.Duration(ms)*time.Millisecond > limit:
		return DeadlineError(DeadlineCapped, limit, attempts)
	}
	return DeadlineError(DeadlineRequest, limit, attempts)
}

// count is "1 send", "3 sends".
func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
