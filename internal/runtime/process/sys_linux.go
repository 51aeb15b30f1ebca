package process

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"unsafe"
)

// sysProcAttr puts the runtime in a process group of its own, so one kill
// takes whatever it started too, and has the kernel kill it if the node
// dies first.
//
// Pdeathsig fires when the thread that started the process exits, not only
// the whole node: the Go runtime ends a thread only when a goroutine exits
// while locked to it (runtime.LockOSThread), which nothing in wisp does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// reap waits for the process to exit, calls exited while it is still a
// zombie, and then reaps it. Until it is reaped its pid, and so its process
// group id, cannot be reused, so exited can safely kill the group.
func reap(cmd *exec.Cmd, exited func()) error {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t, unread
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(cmd.Process.Pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			break
		}
	}
	exited()
	return cmd.Wait()
}

// killGroup sends SIGKILL to every process in the group pgid.
func killGroup(pgid int) error {
	return syscall.Kill(-pgid, syscall.SIGKILL)
}

// pipeBuffered returns how many bytes wait unread in the pipe fd.
func pipeBuffered(fd int) int {
	var n int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	if errno != 0 {
		return 0
	}
	return int(n)
}

// memReader reads a process's peak resident memory (VmHWM) from
// /proc/<pid>/status, keeping the file open: re-reading it from offset 0
// gives fresh numbers without an open per invocation.
type memReader struct {
	f      *os.File
	buf    [4096]byte
	peakKB int64 // the last value read
}

func openMem(pid int) *memReader {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return &memReader{}
	}
	return &memReader{f: f}
}

var vmHWM = []byte("\nVmHWM:")

// peakMB returns the peak memory in MiB, rounded up; the last value read
// once the process is gone, 0 where unavailable.
func (m *memReader) peakMB() int {
	if m.f != nil {
		n, _ := m.f.ReadAt(m.buf[:], 0) // a short read ends in io.EOF
		b := m.buf[:n]
		if i := bytes.Index(b, vmHWM); i >= 0 {
			b = bytes.TrimLeft(b[i+len(vmHWM):], " \t")
			var kb int64
			for len(b) > 0 && '0' <= b[0] && b[0] <= '9' {
				kb = kb*10 + int64(b[0]-'0')
				b = b[1:]
			}
			if kb > 0 {
				m.peakKB = kb
			}
		}
	}
	return int((m.peakKB + 1023) / 1024)
}

func (m *memReader) close() {
	if m.f != nil {
		m.f.Close()
	}
}
