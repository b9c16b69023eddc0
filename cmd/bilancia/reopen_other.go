//go:build !unix

package main

import (
	"log/slog"

	"github.com/bilancia/bilancia/internal/logfile"
)

// reopenOnSignal does nothing where there is no SIGUSR1.
func reopenOnSignal(*logfile.File, string, *slog.Logger) (stop func()) { return func() {} }
