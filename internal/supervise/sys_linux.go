package supervise

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own, and has the
// kernel kill it if the thread that started it ends: when this process
// dies without stopping it (SIGKILL, a crash). Go ends a thread only when a
// goroutine locked to it (runtime.LockOSThread) returns without unlocking,
// which no caller of Start does.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
