//go:build unix && !linux

package process

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts the runtime in a process group of its own, so one kill
// takes whatever it started too. Only Linux can tie its life to the node's.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// reap waits for the process to exit and reaps it, then calls exited. Here
// the group is killed after the reap: its id could in theory be reused by
// then, a risk taken on development platforms only.
func reap(cmd *exec.Cmd, exited func()) error {
	err := cmd.Wait()
	exited()
	return err
}

// killGroup sends SIGKILL to every process in the group pgid.
func killGroup(pgid int) error {
	return syscall.Kill(-pgid, syscall.SIGKILL)
}

// pipeBuffered would return how many bytes wait unread in the pipe; here it
// does not know, so output is flushed only as far as it has been read.
func pipeBuffered(fd int) int { return 0 }

// memReader would read a process's peak memory; not here.
type memReader struct{}

func openMem(pid int) *memReader { return &memReader{} }
func (m *memReader) peakMB() int { return 0 }
func (m *memReader) close()      {}
