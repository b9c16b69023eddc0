package main

import (
	"fmt"
	"os"
	"syscall"
)

// SignalCmd sends a running role one of the signals it answers, by name,
// as nats-server --signal does: for an image without a shell or kill,
// where a Kubernetes preStop hook runs `bilancia signal ldm` to put the
// broker, the container's first process, in lame duck mode.
type SignalCmd struct {
	Name string `arg:"" enum:"ldm,reload,reopen,term" help:"ldm (SIGUSR2: lame duck mode), reload (SIGHUP), reopen (SIGUSR1: the log), term (SIGTERM: stop gracefully)."`
	PID  int    `arg:"" optional:"" default:"1" help:"The process (default 1: a container's first process)."`
}

// signalActions maps the names of SignalCmd to the actions of signals.go.
var signalActions = map[string]action{"ldm": enterLameDuck, "reload": reloadConfig, "reopen": reopenLog}

func (c *SignalCmd) Run() error {
	sig, err := signalNamed(c.Name)
	if err != nil {
		return err
	}
	if c.PID <= 0 {
		return &exitError{2, fmt.Sprintf("no process %d", c.PID)}
	}
	p, err := os.FindProcess(c.PID)
	if err == nil {
		err = p.Signal(sig)
	}
	if err != nil {
		return fmt.Errorf("signal %s to process %d: %w", c.Name, c.PID, err)
	}
	return nil
}

// signalNamed is the signal of a SignalCmd name on this system.
func signalNamed(name string) (os.Signal, error) {
	if name == "term" {
		return syscall.SIGTERM, nil
	}
	a, ok := signalActions[name]
	if !ok {
		return nil, &exitError{2, fmt.Sprintf("no signal is called %q", name)}
	}
	for sig, sa := range actionSignals {
		if sa == a {
			return sig, nil
		}
	}
	return nil, &exitError{1, "this system has no signal to " + actionNames[a]}
}
