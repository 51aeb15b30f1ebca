package process

import (
	"errors"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
)

// proc is a runtime's running process, as an instance sees it: plain
// (a process group of the node's) or inside a sandbox.
type proc interface {
	// wait blocks until the process has exited, kills whatever it left,
	// and returns how it ended.
	wait() error
	// kill ends the process and all it started; it is safe after wait.
	kill()
	// peakMB is the peak memory so far, 0 where unknown.
	peakMB() int
	// oomKilled says the kernel killed it for memory.
	oomKilled() bool
	// close releases what the process held, after wait.
	close()
	// pid is the node's view of its pid, for logs.
	pid() int
}

// plainProc is an unsandboxed process in a group of its own.
type plainProc struct {
	cmd *exec.Cmd
	mem *memReader // its reads are the caller's to serialize (Invoke's)
	log *slog.Logger

	mu     sync.Mutex
	reaped bool // guarded by mu: the process has been reaped, so its pid may be reused
}

func newPlainProc(cmd *exec.Cmd, log *slog.Logger) *plainProc {
	return &plainProc{cmd: cmd, mem: openMem(cmd.Process.Pid), log: log}
}

func (p *plainProc) pid() int { return p.cmd.Process.Pid }

func (p *plainProc) wait() error {
	return reap(p.cmd, func() {
		p.mu.Lock()
		p.killLocked()
		p.reaped = true
		p.mu.Unlock()
	})
}

func (p *plainProc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked()
}

func (p *plainProc) killLocked() {
	if p.reaped {
		return
	}
	if err := killGroup(p.pid()); err != nil && !errors.Is(err, syscall.ESRCH) {
		p.log.Warn("process: kill", "pid", p.pid(), "err", err)
	}
}

func (p *plainProc) peakMB() int     { return p.mem.peakMB() }
func (p *plainProc) oomKilled() bool { return false }
func (p *plainProc) close()          { p.mem.close() }
