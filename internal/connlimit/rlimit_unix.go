//go:build unix

package connlimit

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the process's soft limit on open descriptors to
// its hard limit, and returns the limit now in force. Calling it again
// changes nothing. (Go raises the soft limit itself at start, for the
// process but not its children; this covers a process whose limit was
// set lower after that, and says what the limit is.)
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("connlimit: reading the descriptor limit: %w", err)
	}
	if lim.Cur >= lim.Max {
		return lim.Cur, nil
	}
	cur := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return cur, fmt.Errorf("connlimit: raising the descriptor limit from %d to %d: %w", cur, lim.Max, err)
	}
	return lim.Max, nil
}
