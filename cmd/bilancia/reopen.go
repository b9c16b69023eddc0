package main

import (
	"log/slog"

	"github.com/bilancia/bilancia/internal/logfile"
)

// reopenOnSignal reopens lf at path on every SIGUSR1, as nats-server
// does with its log, so that a log rotation can rename the file away; the
// returned function stops it.
func reopenOnSignal(lf *logfile.File, path string, log *slog.Logger) (stop func()) {
	return onSignal(reopenLog, func() {
		if err := lf.Reopen(); err != nil {
			log.Error("log not reopened", "path", path, "error", err.Error())
			return
		}
		log.Info("log reopened", "path", path)
	})
}
