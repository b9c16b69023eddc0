package resend

import (
	"testing"

	"github.com/bilancia/bilancia/internal/purity"
)

// TestPure fails if the resend core reaches for the network, the clock,
// the global random source, goroutines or locks.
func TestPure(t *testing.T) { purity.Check(t, ".", 1) }
