//go:build !linux

package consultest

import (
	"os"
	"syscall"
)

// sysProcAttr has no parent-death signal outside Linux: an agent outlives a
// test binary that dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// resume does nothing outside Linux; Stop then falls back to SIGKILL for a
// frozen agent.
func resume(*os.Process) {}
