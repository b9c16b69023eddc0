package client

import (
	"time"

	"github.com/bilancia/bilancia/calcworker/calc"
)

// DefaultTimeout is a request's deadline, beyond the time its op asks
// for, when neither Config.Timeout nor the caller's ctx sets one.
const DefaultTimeout = 10 * time.Second

// timeout is the deadline of a request with payload when the caller's
// ctx has none: Config.Timeout, else DefaultTimeout beyond the time the
// op asks for (sleep N, spin N), so that every op a worker accepts can
// finish with the defaults.
func (c *Client) timeout(payload []byte) time.Duration {
	if c.cfg.Timeout > 0 {
		return c.cfg.Timeout
	}
	return DefaultTimeout + calc.Takes(payload)
}
