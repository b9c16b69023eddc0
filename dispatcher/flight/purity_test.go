package flight

import (
	"testing"

	"github.com/bilancia/bilancia/internal/purity"
)

// TestPure fails if the core reaches for the network, the clock, the
// global random source, goroutines or locks (internal/purity proves the
// check finds each of them).
func TestPure(t *testing.T) { purity.Check(t, ".", 6) }
