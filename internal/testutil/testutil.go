// Package testutil holds the helpers every package's tests share.
package testutil

import (
	"testing"
	"time"
)

// CheckFor calls f every interval until it returns nil, and fails the test
// with f's last error if that has not happened within d. Tests wait on
// conditions this way, never on bare sleeps.
func CheckFor(t testing.TB, d, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", d, err)
		}
		time.Sleep(interval) // the polling pace, not synchronisation
	}
}
