//go:build unix && !linux

package bench

import (
	"os/exec"
	"syscall"
	"time"
)

// setProcAttr puts the child in a process group of its own, so that it and
// anything it starts can be signalled together.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// processCPU is only implemented on Linux.
func processCPU(int) (time.Duration, error) { return 0, errNoCPU }
