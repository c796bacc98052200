package cpscale

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises this process's soft limit of open files to at
// least need, within the hard limit, and makes child processes (the control
// plane) inherit it: Go raises its own soft limit at start but gives
// children the original one back unless Setrlimit was called. It fails,
// naming the limit, when the hard limit is below need.
func RaiseFileLimit(need int) error {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("cpscale: read the open-file limit: %w", err)
	}
	if rl.Max < uint64(need) {
		return fmt.Errorf("cpscale: need %d open files but the hard limit (ulimit -Hn) is %d: raise it or use fewer connections", need, rl.Max)
	}
	rl.Cur = max(rl.Cur, uint64(need))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("cpscale: raise the open-file limit to %d: %w", need, err)
	}
	return nil
}
