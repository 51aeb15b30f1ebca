package sandbox

import "golang.org/x/sys/unix"

// auditArch is the ABI whose syscalls the seccomp filter lets through.
const auditArch = unix.AUDIT_ARCH_AARCH64

// x32SyscallBit is x86-64's alone.
const x32SyscallBit = 0

// archDeniedSyscalls are refused as deniedSyscalls are, but not every CPU
// has them.
var archDeniedSyscalls = []uint32{unix.SYS_KEXEC_FILE_LOAD}
