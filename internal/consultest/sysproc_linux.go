package consultest

import (
	"os"
	"syscall"
)

// sysProcAttr makes the kernel kill the agent if the test binary dies without
// running its cleanups (a panic, or go test's -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// resume continues a process stopped with SIGSTOP.
func resume(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
