package supervise

import (
	"context"
	"fmt"
	"time"
)

// Poll waits until a child is ready: it calls ready every interval until
// it returns nil, and returns nil then. It gives up early when one of
// watch has exited (that process's Alive error, with the tail of its
// output) or when ctx ends (ctx's error). When timeout passes first, it
// returns an error matching ErrNotReady that says what was awaited and
// wraps ready's last error.
func Poll(ctx context.Context, what string, timeout, interval time.Duration, ready func() error, watch ...*Process) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		for _, p := range watch {
			if p == nil {
				continue
			}
			if e := p.Alive(); e != nil {
				return e
			}
		}
		if time.Now().After(deadline) {
			return &notReadyError{msg: fmt.Sprintf("%s: not ready after %v: %v", what, timeout, err), last: err}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

type notReadyError struct {
	msg  string
	last error
}

func (e *notReadyError) Error() string        { return e.msg }
func (e *notReadyError) Unwrap() error        { return e.last }
func (e *notReadyError) Is(target error) bool { return target == ErrNotReady }
