//go:build unix

package main

import (
	"os"
	"syscall"
)

// actionSignals are the signals onSignal's handlers answer, as nats-server's.
var actionSignals = map[os.Signal]action{
	syscall.SIGHUP:  reloadConfig,
	syscall.SIGUSR1: reopenLog,
	syscall.SIGUSR2: enterLameDuck,
}
