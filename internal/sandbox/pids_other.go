//go:build !linux

package sandbox

// Pids is unsupported off Linux.
func (s *Sandbox) Pids() ([]int, error) { return nil, ErrUnsupported }
