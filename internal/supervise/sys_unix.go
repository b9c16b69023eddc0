//go:build unix && !linux

package supervise

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own. Only Linux
// kills it when this process dies.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
