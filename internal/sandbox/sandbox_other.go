//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
)

// ErrUnsupported is NewManager's error where sandboxes cannot be made.
var ErrUnsupported = fmt.Errorf("sandbox: needs Linux namespaces and cgroups, not %s", runtime.GOOS)

// Manager starts sandboxes; here there are none.
type Manager struct{}

// NewManager returns ErrUnsupported.
func NewManager(cfg ManagerConfig) (*Manager, error) { return nil, ErrUnsupported }

// Close does nothing.
func (m *Manager) Close() error { return nil }

// CgroupVersion returns 0.
func (m *Manager) CgroupVersion() int { return 0 }

// Start returns ErrUnsupported.
func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	return nil, ErrUnsupported
}

// Sandbox is a running sandbox; here there are none.
type Sandbox struct{}

func (s *Sandbox) Pid() int                                      { return 0 }
func (s *Sandbox) Listeners() (runtimeAPI, wispAPI net.Listener) { return nil, nil }
func (s *Sandbox) Wait() (ExitStatus, error)                     { return ExitStatus{}, ErrUnsupported }
func (s *Sandbox) Kill() error                                   { return ErrUnsupported }
func (s *Sandbox) MaxMemoryMB() int                              { return 0 }
func (s *Sandbox) CapCPU() error                                 { return ErrUnsupported }
func (s *Sandbox) Close() error                                  { return nil }

// RunInit reports that there is no sandbox init here.
func RunInit() int {
	fmt.Fprintln(os.Stderr, ErrUnsupported)
	return 1
}
