//go:build !linux

package supervise

import "time"

// ReadMemory is only implemented on Linux.
func ReadMemory(int) (rss, peak int64, err error) { return 0, 0, ErrNoProc }

// CPUTime is only implemented on Linux.
func CPUTime(int) (time.Duration, error) { return 0, ErrNoProc }
