package sandbox

import (
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp filter keeps the runtime away from the kernel's most exposed
// interfaces, and from what would undo the sandbox: new namespaces (a new
// user namespace gives back every capability inside it, and with it
// mounts, netfilter and more), mounts, keyrings (per uid, they outlive a
// sandbox), tracing other processes, what only root may do anyway, and
// every address family a runtime does without (vsock, for one, is not
// confined by a network namespace: it reaches the host's hypervisor).
// The init installs it on all its threads once it has set the sandbox up;
// the runtime inherits it and cannot remove it.

// deniedSyscalls fail with EPERM whatever their arguments.
var deniedSyscalls = []uint32{
	// Namespaces. clone is filtered on its flags, clone3 refused below.
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	// Mounts, with the old API and the new.
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_OPEN_TREE_ATTR, unix.SYS_MOUNT_SETATTR,
	unix.SYS_FSOPEN, unix.SYS_FSMOUNT, unix.SYS_FSCONFIG, unix.SYS_FSPICK,
	// Kernel keyrings.
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	// Large attack surfaces that runtimes do without.
	unix.SYS_BPF, unix.SYS_USERFAULTFD, unix.SYS_PERF_EVENT_OPEN,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	// Other processes.
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PIDFD_GETFD,
	// Files by handle, past the mount namespace's root.
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	// The host's: mostly root's only, refused early in case of a kernel
	// bug; syslog reads the host's kernel log where dmesg_restrict is 0.
	unix.SYS_KEXEC_LOAD, // kexec_file_load: in archDeniedSyscalls, not on every CPU
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_REBOOT, unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT,
	unix.SYS_LOOKUP_DCOOKIE, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD, unix.SYS_SYSLOG, unix.SYS_VHANGUP,
}

// cloneNewFlags are clone's flags that make a namespace. CLONE_NEWTIME is
// not among them: clone's low byte is the exit signal, so only unshare
// and clone3 can ask for a time namespace.
const cloneNewFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// allowedPersonalities are the personality(2) arguments let through, as
// Docker's default profile does: Linux, 32-bit Linux, the 2.6 uname of
// each, and the query. Refused are the flags that weaken exec, such as
// ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC.
var allowedPersonalities = []uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// allowedFamilies are the address families socket(2) and socketpair(2)
// may ask for: Unix sockets, IPv4 and IPv6, and netlink for its route
// protocol alone, which getifaddrs (Node's os.networkInterfaces, glibc's
// getaddrinfo with AI_ADDRCONFIG) and Go's net.Interfaces read the
// interfaces with. Any other family fails with EAFNOSUPPORT, as on a
// kernel built without it, and another netlink protocol (audit, uevents,
// sock_diag, …) with EPROTONOSUPPORT. The same with either network: the
// host's needs no other family either.
var allowedFamilies = []uint32{unix.AF_UNIX, unix.AF_INET, unix.AF_INET6}

// Offsets in struct seccomp_data, which the filter reads.
const (
	seccompNr   = 0
	seccompArch = 4
	// The low 32 bits of args[0] and args[2], on a little-endian CPU
	// (amd64, arm64). clone's flags, personality's argument and socket's
	// domain and protocol fit in them: the kernel reads only those.
	seccompArg0 = 16
	seccompArg2 = 32
)

// bpfProgram is a classic BPF program built one instruction at a time.
// Jumps are relative: jt and jf count the instructions skipped.
type bpfProgram []unix.SockFilter

// load loads the 32-bit word at off in the seccomp data.
func (p *bpfProgram) load(off uint32) {
	*p = append(*p, unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off})
}

// jump compares the loaded word with k (op is BPF_JEQ, BPF_JGE or
// BPF_JSET) and skips jt instructions if true, jf if false.
func (p *bpfProgram) jump(op uint16, k uint32, jt, jf uint8) {
	*p = append(*p, unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k, Jt: jt, Jf: jf})
}

// ret ends the program with the seccomp action.
func (p *bpfProgram) ret(action uint32) {
	*p = append(*p, unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: action})
}

// refuse makes the syscall nr fail with errno. The syscall number must
// be loaded.
func (p *bpfProgram) refuse(nr uint32, errno unix.Errno) {
	p.jump(unix.BPF_JEQ, nr, 0, 1)
	p.ret(retErrno(errno))
}

// onArg0 runs body, with the low word of the first argument loaded, for
// the syscall nr. The syscall number must be loaded; body must end in a
// return, and be short: a jump skips at most 255 instructions.
func (p *bpfProgram) onArg0(nr uint32, body bpfProgram) {
	p.jump(unix.BPF_JEQ, nr, 0, uint8(1+len(body)))
	p.load(seccompArg0)
	*p = append(*p, body...)
}

func retErrno(errno unix.Errno) uint32 {
	return unix.SECCOMP_RET_ERRNO | uint32(errno)&unix.SECCOMP_RET_DATA
}

// seccompFilter returns the sandbox's filter for this build's CPU.
func seccompFilter() (bpfProgram, error) {
	if auditArch == 0 {
		return nil, fmt.Errorf("seccomp: no filter for %s", runtime.GOARCH)
	}
	var p bpfProgram
	// Another ABI (i386 by int 0x80 on amd64, arm32 on arm64) numbers
	// syscalls its own way: the process is killed rather than let past.
	p.load(seccompArch)
	p.jump(unix.BPF_JEQ, auditArch, 1, 0)
	p.ret(unix.SECCOMP_RET_KILL_PROCESS)
	p.load(seccompNr)
	if x32SyscallBit != 0 {
		// x32 syscalls share the arch and set this bit in the number:
		// refused as by a kernel built without x32, as most are.
		p.jump(unix.BPF_JSET, x32SyscallBit, 0, 1)
		p.ret(retErrno(unix.ENOSYS))
	}
	for _, nr := range slices.Concat(deniedSyscalls, archDeniedSyscalls) {
		p.refuse(nr, unix.EPERM)
	}
	// clone3's flags are in memory, which the filter cannot read. ENOSYS
	// makes glibc and Go fall back to clone.
	p.refuse(unix.SYS_CLONE3, unix.ENOSYS)
	var clone bpfProgram
	clone.jump(unix.BPF_JSET, cloneNewFlags, 0, 1)
	clone.ret(retErrno(unix.EPERM))
	clone.ret(unix.SECCOMP_RET_ALLOW)
	p.onArg0(unix.SYS_CLONE, clone)
	var pers bpfProgram
	for i, v := range allowedPersonalities {
		// To the allow after the EPERM below.
		pers.jump(unix.BPF_JEQ, v, uint8(len(allowedPersonalities)-i), 0)
	}
	pers.ret(retErrno(unix.EPERM))
	pers.ret(unix.SECCOMP_RET_ALLOW)
	p.onArg0(unix.SYS_PERSONALITY, pers)
	p.onArg0(unix.SYS_SOCKET, familyFilter())
	p.onArg0(unix.SYS_SOCKETPAIR, familyFilter())
	p.ret(unix.SECCOMP_RET_ALLOW)
	return p, nil
}

// familyFilter is the body of socket's and socketpair's check, the
// domain loaded: allowedFamilies through, netlink only for NETLINK_ROUTE
// (the protocol, args[2]), the rest refused.
func familyFilter() bpfProgram {
	var b bpfProgram
	n := len(allowedFamilies)
	// Laid out as: the family jumps, the netlink jump, load and check the
	// protocol, EPROTONOSUPPORT, allow, EAFNOSUPPORT.
	for i, af := range allowedFamilies {
		b.jump(unix.BPF_JEQ, af, uint8(n-i+3), 0) // to the allow
	}
	b.jump(unix.BPF_JEQ, unix.AF_NETLINK, 0, 4) // else to EAFNOSUPPORT
	b.load(seccompArg2)
	b.jump(unix.BPF_JEQ, unix.NETLINK_ROUTE, 1, 0)
	b.ret(retErrno(unix.EPROTONOSUPPORT))
	b.ret(unix.SECCOMP_RET_ALLOW)
	b.ret(retErrno(unix.EAFNOSUPPORT))
	return b
}

// installSeccomp installs the filter on every thread of the process
// (TSYNC), so whichever thread forks the runtime passes it on. It needs
// no_new_privs or CAP_SYS_ADMIN; the init has both.
func installSeccomp() error {
	p, err := seccompFilter()
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(p)), Filter: &p[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(p)
	switch {
	case errno != 0:
		return fmt.Errorf("seccomp: %w", errno)
	case r != 0:
		// With TSYNC, the id of a thread that could not take the filter.
		return fmt.Errorf("seccomp: thread %d could not take the filter", r)
	}
	return nil
}
