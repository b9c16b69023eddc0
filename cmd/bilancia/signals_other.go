//go:build !unix

package main

import "os"

// actionSignals is empty where there are no SIGHUP, SIGUSR1 and SIGUSR2.
var actionSignals = map[os.Signal]action{}
