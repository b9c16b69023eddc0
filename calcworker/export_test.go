package calcworker

import (
	"testing"
	"time"
)

// SetAckWait sets how long a long job's reply waits for its
// acknowledgement, for the test t, before any worker of it starts: a test
// that acknowledges by hand must not race the machine's stalls.
func SetAckWait(t testing.TB, d time.Duration) {
	old := ackWait
	ackWait = d
	t.Cleanup(func() { ackWait = old })
}
