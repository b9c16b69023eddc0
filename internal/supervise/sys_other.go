//go:build !unix

package supervise

import (
	"os/exec"
	"syscall"
)

func setProcAttr(*exec.Cmd) {}

// signalGroup can only kill the child itself here, whatever the signal.
func signalGroup(cmd *exec.Cmd, _ syscall.Signal) error {
	return cmd.Process.Kill()
}
