package process

import (
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/wisp-dev/wisp/internal/sandbox"
)

// Paths inside a sandbox, as on Lambda.
const (
	sandboxTaskRoot   = "/var/task"
	sandboxRuntimeDir = "/var/runtime"
)

// sandboxProc is a runtime running under a sandbox init.
type sandboxProc struct {
	sb   *sandbox.Sandbox
	log  *slog.Logger
	oom  atomic.Bool
	peak atomic.Int64 // the last peak read, kept past Close
}

func (p *sandboxProc) pid() int { return p.sb.Pid() }

func (p *sandboxProc) wait() error {
	st, err := p.sb.Wait()
	p.peakMB() // read it while the cgroup is there
	p.oom.Store(st.OOMKilled)
	if err != nil {
		return err
	}
	switch {
	case st.Signal != 0:
		return fmt.Errorf("signal: %s", st.Signal)
	case st.Code != 0:
		return fmt.Errorf("exit status %d", st.Code)
	}
	return nil
}

func (p *sandboxProc) kill() {
	// Killing a sandbox that has ended is not an error.
	if err := p.sb.Kill(); err != nil {
		p.log.Debug("process: killing a sandbox", "pid", p.sb.Pid(), "err", err)
	}
}

func (p *sandboxProc) peakMB() int {
	if mb := p.sb.MaxMemoryMB(); mb > 0 {
		p.peak.Store(int64(mb))
	}
	return int(p.peak.Load())
}

func (p *sandboxProc) oomKilled() bool { return p.oom.Load() }

func (p *sandboxProc) close() {
	if err := p.sb.Close(); err != nil {
		p.log.Warn("process: removing a sandbox", "pid", p.sb.Pid(), "err", err)
	}
}
