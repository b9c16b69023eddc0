//go:build unix

package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/bilancia/bilancia/internal/logfile"
)

// reopenOnSignal reopens lf at path on every SIGUSR1, as nats-server
// does with its log, so that a log rotation can rename the file away; the
// returned function stops it.
func reopenOnSignal(lf *logfile.File, path string, log *slog.Logger) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range ch {
			if err := lf.Reopen(); err != nil {
				log.Error("log not reopened", "path", path, "error", err.Error())
				continue
			}
			log.Info("log reopened", "path", path)
		}
	}()
	return func() {
		signal.Stop(ch)
		close(ch)
		<-done
	}
}
