package sandbox

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// runFilter runs the seccomp program p over one syscall as the kernel
// would, and returns the action. It knows the instructions the builder
// makes.
func runFilter(t *testing.T, p bpfProgram, arch uint32, nr, arg0, arg2 uint64) uint32 {
	t.Helper()
	var data [64]byte // struct seccomp_data
	binary.LittleEndian.PutUint32(data[seccompNr:], uint32(nr))
	binary.LittleEndian.PutUint32(data[seccompArch:], arch)
	binary.LittleEndian.PutUint64(data[seccompArg0:], arg0)
	binary.LittleEndian.PutUint64(data[seccompArg2:], arg2)
	var a uint32
	for pc := 0; pc < len(p); pc++ {
		in := p[pc]
		jump := func(cond bool) {
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			jump(a == in.K)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			jump(a >= in.K)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			jump(a&in.K != 0)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("instruction %d: unknown code %#x", pc, in.Code)
		}
	}
	t.Fatalf("the program ran past its end")
	return 0
}

func TestSeccompFilter(t *testing.T) {
	p, err := seccompFilter()
	if err != nil {
		t.Skip(err)
	}
	if len(p) > 4096 { // BPF_MAXINSNS
		t.Fatalf("%d instructions", len(p))
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		kill  = unix.SECCOMP_RET_KILL_PROCESS
	)
	eperm, enosys := retErrno(unix.EPERM), retErrno(unix.ENOSYS)
	eafnosupport, eprotonosupport := retErrno(unix.EAFNOSUPPORT), retErrno(unix.EPROTONOSUPPORT)
	type call struct {
		name           string
		arch           uint32
		nr, arg0, arg2 uint64
		want           uint32
	}
	calls := []call{
		{name: "read", nr: unix.SYS_READ, want: allow},
		{name: "getpid", nr: unix.SYS_GETPID, want: allow},
		{name: "another ABI", arch: unix.AUDIT_ARCH_I386, nr: 20, want: kill},
		{name: "fork", nr: unix.SYS_CLONE, arg0: uint64(unix.SIGCHLD), want: allow},
		{name: "thread", nr: unix.SYS_CLONE, arg0: unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
			unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID, want: allow},
		{name: "vfork", nr: unix.SYS_CLONE, arg0: unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | uint64(unix.SIGCHLD), want: allow},
		{name: "clone3", nr: unix.SYS_CLONE3, want: enosys},
		{name: "personality query", nr: unix.SYS_PERSONALITY, arg0: 0xffffffff, want: allow},
		{name: "personality linux", nr: unix.SYS_PERSONALITY, arg0: 0, want: allow},
		{name: "personality linux32", nr: unix.SYS_PERSONALITY, arg0: 8, want: allow},
		{name: "personality no ASLR", nr: unix.SYS_PERSONALITY, arg0: 0x0040000, want: eperm},
		{name: "personality READ_IMPLIES_EXEC", nr: unix.SYS_PERSONALITY, arg0: 0x0400000, want: eperm},
		{name: "socket unix", nr: unix.SYS_SOCKET, arg0: unix.AF_UNIX, want: allow},
		{name: "socket inet", nr: unix.SYS_SOCKET, arg0: unix.AF_INET, arg2: unix.IPPROTO_TCP, want: allow},
		{name: "socket inet6", nr: unix.SYS_SOCKET, arg0: unix.AF_INET6, want: allow},
		{name: "socket netlink route", nr: unix.SYS_SOCKET, arg0: unix.AF_NETLINK, arg2: unix.NETLINK_ROUTE, want: allow},
		{name: "socket netlink sock_diag", nr: unix.SYS_SOCKET, arg0: unix.AF_NETLINK, arg2: unix.NETLINK_SOCK_DIAG, want: eprotonosupport},
		{name: "socket netlink uevent", nr: unix.SYS_SOCKET, arg0: unix.AF_NETLINK, arg2: unix.NETLINK_KOBJECT_UEVENT, want: eprotonosupport},
		{name: "socket unix, high bits", nr: unix.SYS_SOCKET, arg0: 1<<32 | unix.AF_UNIX, want: allow},
		{name: "socketpair unix", nr: unix.SYS_SOCKETPAIR, arg0: unix.AF_UNIX, want: allow},
		{name: "socketpair tipc", nr: unix.SYS_SOCKETPAIR, arg0: unix.AF_TIPC, want: eafnosupport},
	}
	for _, af := range []uint64{unix.AF_UNSPEC, unix.AF_VSOCK, unix.AF_PACKET, unix.AF_ALG, unix.AF_KEY, unix.AF_BLUETOOTH,
		unix.AF_XDP, unix.AF_TIPC, unix.AF_CAN, unix.AF_RDS, unix.AF_QIPCRTR, unix.AF_PPPOX, unix.AF_X25, unix.AF_MAX} {
		calls = append(calls, call{name: fmt.Sprintf("socket family %d", af), nr: unix.SYS_SOCKET, arg0: af, want: eafnosupport})
	}
	for _, f := range []uint64{unix.CLONE_NEWNS, unix.CLONE_NEWCGROUP, unix.CLONE_NEWUTS, unix.CLONE_NEWIPC,
		unix.CLONE_NEWUSER, unix.CLONE_NEWPID, unix.CLONE_NEWNET} {
		calls = append(calls, call{name: fmt.Sprintf("clone %#x", f), nr: unix.SYS_CLONE, arg0: f | uint64(unix.SIGCHLD), want: eperm})
	}
	for _, nr := range slices.Concat(deniedSyscalls, archDeniedSyscalls) {
		calls = append(calls, call{name: fmt.Sprintf("syscall %d", nr), nr: uint64(nr), want: eperm})
	}
	if x32SyscallBit != 0 {
		calls = append(calls, call{name: "x32 getpid", nr: x32SyscallBit | unix.SYS_GETPID, want: enosys})
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			arch := c.arch
			if arch == 0 {
				arch = auditArch
			}
			if got := runFilter(t, p, arch, c.nr, c.arg0, c.arg2); got != c.want {
				t.Errorf("got %#x, want %#x", got, c.want)
			}
		})
	}
}

// python returns an interpreter to run in a sandbox, as pyenv installs
// them (outside the system dirs, to be shown with Spec.ReadOnly) or else
// the system's, and the dir to show.
func python(t *testing.T) (path, dir string) {
	t.Helper()
	if matches, _ := filepath.Glob("/root/.pyenv/versions/3.*/bin/python3"); len(matches) > 0 {
		return matches[0], filepath.Dir(filepath.Dir(matches[0]))
	}
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3", ""
	}
	t.Skip("no python3")
	return "", ""
}

// TestSyscallsRefused tries, from inside a sandbox, what the filter
// refuses. Where a row's errno would differ without the filter, it says
// so.
func TestSyscallsRefused(t *testing.T) {
	m := newTestManager(t)
	py, pyDir := python(t)
	spec := testSpec(t, `
unshare -U -r true 2>&1; echo "unshare-U=$?"
"$PY" -c "$PROG"
`)
	if pyDir != "" {
		spec.ReadOnly = []string{pyDir}
	}
	spec.Env = append(spec.Env, "PY="+py, "PROG="+`
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L, S = ctypes.c_long, ctypes.c_char_p
def call(label, name, *args):
    ctypes.set_errno(0)
    r = libc.syscall(L(int(os.environ["NR_" + name])), *args)
    if name == "clone" and r == 0:
        os._exit(0)  # the child of a clone that went through
    if name == "clone" and r > 0:
        os.waitpid(r, 0)
    print(label, errno.errorcode[ctypes.get_errno()] if r == -1 else "ok")
call("mount", "mount", S(b"none"), S(b"/nonexistent"), S(b"tmpfs"), L(0), L(0))  # else ENOENT
call("umount2", "umount2", S(b"/nonexistent"), L(0))  # else ENOENT
call("clone-newuser", "clone", L(0x10000000 | 17), L(0), L(0), L(0), L(0))  # else ok
call("clone-fork", "clone", L(17), L(0), L(0), L(0), L(0))
# Last of the namespaces: without the filter, it moves this process into
# a user namespace of its own.
call("unshare", "unshare", L(0x10000000))  # CLONE_NEWUSER; else ok
call("clone-newnet", "clone", L(0x40000000 | 17), L(0), L(0), L(0), L(0))  # else ok, after unshare
call("clone3", "clone3", L(0), L(0))  # else EINVAL
call("keyctl", "keyctl", L(0), L(-4), L(1))  # the user keyring's id; else ok
call("add_key", "add_key", S(b"user"), S(b"wisp"), S(b"v"), L(1), L(-2))  # else ok
call("userfaultfd", "userfaultfd", L(1))  # UFFD_USER_MODE_ONLY; else ok
call("io_uring_setup", "io_uring_setup", L(1), ctypes.create_string_buffer(120))  # else ok
call("personality-no-aslr", "personality", L(0x0040000))  # else ok
call("personality-query", "personality", L(0xffffffff))
`)
	for name, nr := range map[string]uintptr{
		"mount": unix.SYS_MOUNT, "umount2": unix.SYS_UMOUNT2, "unshare": unix.SYS_UNSHARE, "clone": unix.SYS_CLONE,
		"clone3": unix.SYS_CLONE3, "keyctl": unix.SYS_KEYCTL, "add_key": unix.SYS_ADD_KEY,
		"userfaultfd": unix.SYS_USERFAULTFD, "io_uring_setup": unix.SYS_IO_URING_SETUP, "personality": unix.SYS_PERSONALITY,
	} {
		spec.Env = append(spec.Env, fmt.Sprintf("NR_%s=%d", name, nr))
	}
	st, out, errOut := run(t, m, spec)
	if st.Code != 0 {
		t.Errorf("status %+v (stderr %q)", st, errOut)
	}
	for _, want := range []string{
		"unshare failed: Operation not permitted\nunshare-U=1\n",
		"mount EPERM\n", "umount2 EPERM\n", "unshare EPERM\n",
		"clone-newuser EPERM\n", "clone-newnet EPERM\n", "clone-fork ok\n", "clone3 ENOSYS\n",
		"keyctl EPERM\n", "add_key EPERM\n", "userfaultfd EPERM\n", "io_uring_setup EPERM\n",
		"personality-no-aslr EPERM\n", "personality-query ok\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in %q (stderr %q)", want, out, errOut)
		}
	}
}

// TestProgramsUnderFilter runs ordinary runtimes, which fork, start
// threads (glibc's clone3 falls back to clone) and exec, under the filter.
func TestProgramsUnderFilter(t *testing.T) {
	m := newTestManager(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	py, pyDir := python(t)
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{name: "sh", argv: []string{"/bin/sh", "-c", `echo "$(echo sub) $(sh -c 'echo nested') $( (sleep 0.01 &) ; echo bg)"`},
			want: "sub nested bg\n"},
		{name: "python", argv: []string{py, "-c", `
import subprocess, threading
out = []
t = threading.Thread(target=lambda: out.append(subprocess.check_output(["/bin/echo", "child"]).decode().strip()))
t.start(); t.join()
print("python", out[0])
`}, want: "python child\n"},
		// A Go program, as Go functions are: this test binary, running no
		// test.
		{name: "go", argv: []string{self, "-test.run=^$"}, want: "PASS\n"},
	}
	if _, err := os.Stat("/usr/bin/node"); err == nil {
		tests = append(tests, struct {
			name string
			argv []string
			want string
		}{name: "node", argv: []string{"/usr/bin/node", "-e", `
const { execSync } = require("child_process");
const { Worker } = require("worker_threads");
const child = execSync("echo child").toString().trim();
new Worker("require('worker_threads').parentPort.postMessage('worker')", { eval: true })
	.on("message", (m) => console.log("node", child, m));
`}, want: "node child worker\n"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := testSpec(t, "")
			spec.Argv = tc.argv
			spec.MemoryMB = 512
			spec.ReadOnly = []string{filepath.Dir(self)}
			if pyDir != "" {
				spec.ReadOnly = append(spec.ReadOnly, pyDir)
			}
			st, out, errOut := run(t, m, spec)
			if st.Code != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("got %+v, %q, want exit 0 and %q (stderr %q)", st, out, tc.want, errOut)
			}
		})
	}
}

// interfacesProbeArg makes the test binary run probeInterfaces.
const interfacesProbeArg = "__interfaces-probe"

// probeInterfaces prints the interfaces Go's net package finds, which it
// asks netlink's route protocol for.
func probeInterfaces() int {
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Println("go interfaces:", err)
		return 1
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	fmt.Printf("go interfaces: %s\n", strings.Join(names, ","))
	return 0
}

// familyProbe tries a socket of each family from inside a sandbox. The
// comments say what a row gives without the filter, for the sandbox's
// unprivileged user; a family the kernel lacks is EAFNOSUPPORT anyway.
const familyProbe = `
import errno, socket
def probe(label, family, type, proto=0):
    try:
        socket.socket(family, type, proto).close()
        print(label, "ok")
    except OSError as e:
        print(label, errno.errorcode.get(e.errno, e.errno))
probe("unix", socket.AF_UNIX, socket.SOCK_STREAM)
probe("inet", socket.AF_INET, socket.SOCK_STREAM)
probe("inet6", socket.AF_INET6, socket.SOCK_DGRAM)
probe("netlink-route", socket.AF_NETLINK, socket.SOCK_RAW, 0)
probe("netlink-sock-diag", socket.AF_NETLINK, socket.SOCK_RAW, 4)  # else ok
probe("netlink-uevent", socket.AF_NETLINK, socket.SOCK_DGRAM, 15)  # else ok
probe("vsock", 40, socket.SOCK_STREAM)  # else ok where the host has vsock
probe("packet", 17, socket.SOCK_RAW)  # else EPERM
probe("alg", 38, socket.SOCK_SEQPACKET)  # else ok
probe("key", 15, socket.SOCK_RAW, 2)  # else EPERM
probe("bluetooth", 31, socket.SOCK_STREAM)
probe("xdp", 44, socket.SOCK_RAW)  # else EPERM
probe("tipc", 30, socket.SOCK_RDM)
probe("can", 29, socket.SOCK_RAW, 1)
a, b = socket.socketpair(socket.AF_UNIX)
print("socketpair-unix ok")
print("python interfaces:", ",".join(n for _, n in socket.if_nameindex()))
`

// TestAddressFamilies creates sockets of each family from inside a
// sandbox, with either network: only those runtimes use go through, and
// Node, Python and Go still list the interfaces.
func TestAddressFamilies(t *testing.T) {
	m := newTestManager(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	py, pyDir := python(t)
	want := []string{
		"unix ok\n", "inet ok\n", "inet6 ok\n", "netlink-route ok\n",
		"netlink-sock-diag EPROTONOSUPPORT\n", "netlink-uevent EPROTONOSUPPORT\n",
		"vsock EAFNOSUPPORT\n", "packet EAFNOSUPPORT\n", "alg EAFNOSUPPORT\n", "key EAFNOSUPPORT\n",
		"bluetooth EAFNOSUPPORT\n", "xdp EAFNOSUPPORT\n", "tipc EAFNOSUPPORT\n", "can EAFNOSUPPORT\n",
		"socketpair-unix ok\n",
		"python interfaces: lo", "go interfaces: lo",
	}
	script := `"$PY" -c "$PROG"; "$SELF" ` + interfacesProbeArg
	if _, err := os.Stat("/usr/bin/node"); err == nil {
		script += `; /usr/bin/node -e 'console.log("node interfaces: " + Object.keys(require("os").networkInterfaces()).join(","))'`
		want = append(want, "node interfaces: lo")
	}
	for _, network := range []string{"none", "host"} {
		t.Run(network, func(t *testing.T) {
			spec := testSpec(t, script)
			spec.Network = network
			spec.MemoryMB = 512
			spec.ReadOnly = []string{filepath.Dir(self)}
			if pyDir != "" {
				spec.ReadOnly = append(spec.ReadOnly, pyDir)
			}
			spec.Env = append(spec.Env, "PY="+py, "PROG="+familyProbe, "SELF="+self)
			st, out, errOut := run(t, m, spec)
			if st.Code != 0 {
				t.Errorf("status %+v (stderr %q)", st, errOut)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in %q (stderr %q)", w, out, errOut)
				}
			}
		})
	}
}
