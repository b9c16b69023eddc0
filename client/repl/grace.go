package repl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bilancia/bilancia/wire"
)

// errStopped is the cause of the requests' context when the session
// stopped waiting for their replies.
var errStopped = errors.New("repl: stopped")

// afterGrace returns the context requests run under: it outlives ctx by
// grace, so that when ctx ends (SIGTERM) the requests in flight still get
// the replies a stopping dispatcher sends. cancel must be called.
func afterGrace(ctx context.Context, grace time.Duration) (calls context.Context, cancel func()) {
	calls, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
		case <-calls.Done():
			return
		}
		if grace > 0 {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-calls.Done():
				return
			}
		}
		stop(errStopped)
	}()
	return calls, func() { stop(context.Canceled) }
}

// stoppedError is what a request cut short by the session's end shows:
// coded, and saying why, instead of Go's "context canceled".
func stoppedError(grace time.Duration) error {
	if grace > 0 {
		return wire.NewError(wire.CodeDeadline, fmt.Sprintf("no reply within the %v the client waits for replies when it stops", grace))
	}
	return wire.NewError(wire.CodeDeadline, "the client stopped (a signal) before the reply came")
}
