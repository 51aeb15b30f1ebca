package sandbox

import "golang.org/x/sys/unix"

// auditArch is the ABI whose syscalls the seccomp filter lets through.
const auditArch = unix.AUDIT_ARCH_X86_64

// x32SyscallBit marks an x32 syscall, which shares x86-64's audit arch.
const x32SyscallBit = 0x40000000

// archDeniedSyscalls are refused as deniedSyscalls are, but not every CPU
// has them.
var archDeniedSyscalls = []uint32{unix.SYS_KEXEC_FILE_LOAD, unix.SYS_IOPL, unix.SYS_IOPERM}
