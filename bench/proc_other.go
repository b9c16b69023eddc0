//go:build !unix

package bench

import (
	"os/exec"
	"syscall"
	"time"
)

func setProcAttr(*exec.Cmd) {}

// signalGroup can only kill the child itself here.
func signalGroup(cmd *exec.Cmd, _ syscall.Signal) error {
	return cmd.Process.Kill()
}

// processCPU is only implemented on Linux.
func processCPU(int) (time.Duration, error) { return 0, errNoCPU }
