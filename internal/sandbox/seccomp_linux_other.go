//go:build linux && !amd64 && !arm64

package sandbox

// No seccomp filter is written for this CPU: NewManager refuses to
// sandbox rather than run without one.
const (
	auditArch     = 0
	x32SyscallBit = 0
)

var archDeniedSyscalls []uint32
