package sandbox

// Pids returns the host pids of every process in the sandbox's cgroup:
// the node uses them to tell its instance's connections from others'.
func (s *Sandbox) Pids() ([]int, error) { return s.cg.procs() }
