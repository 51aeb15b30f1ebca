// Package sandbox owns the isolation of a function instance on Linux: the
// namespaces (pid, mount, ipc, uts and, without a network, net), the
// cgroups (v1 or v2) that bound its memory, processes and CPU (a share,
// and a cap once its runtime is ready), and the sandbox init.
//
// The init is the node's own executable re-executed with a hidden argument
// (see RunInit). It starts as PID 1 of the new namespaces, placed in the
// instance's cgroups, and waits on an inherited control socket for its
// configuration; it then builds a fresh root (read-only system dirs, code
// and runtime, a private /tmp, /proc and a minimal /dev), drops every
// privilege it can, bans core dumps, bounds open files, installs a
// seccomp filter, starts the function's runtime as an unprivileged user
// of the sandbox's own, and stays as init: it reaps, forwards SIGTERM and
// SIGINT, and reports the runtime's exit before exiting itself, which
// ends the namespace.
//
// Dirs of the host are shown as read-only overlays (see shower), not
// binds, where the kernel has overlayfs: a bind's mountinfo line names
// its source's path on the host (the data dir, an interpreter's
// install), an overlay's does not.
package sandbox

import (
	"log/slog"
	"os"
	"syscall"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Self is the executable re-executed as the sandbox init; required.
	Self string
	// SelfArgs are the arguments that make Self run RunInit, such as
	// {"__sandbox-init"}.
	SelfArgs []string
	// StateDir holds each instance's scratch dir (the mount point of its
	// root); required. It is created 0700 if missing.
	StateDir string
	// IDBase and IDCount say where the range of host uids and gids the
	// manager gives sandboxes is: each sandbox its own, as both its uid and
	// gid, so that no per-user kernel state (limits, quotas, keyrings) is
	// shared between sandboxes. The manager takes the first range of
	// IDCount ids at IDBase + k·IDCount that no other manager on the host
	// holds, and holds it in IDLockFile until Close (or its process's
	// end), so nodes on one host never share an id. Ids go round the
	// range, skipping those of live sandboxes. Defaults DefaultIDBase and
	// DefaultIDCount; the ids from IDBase up should hold no other user of
	// the host.
	IDBase, IDCount int
	// IDLockFile is where the ranges are locked, host-wide; default
	// DefaultIDLockFile. Nodes of one host must share it.
	IDLockFile string
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Spec describes one sandboxed instance. The zero values of the limits
// and of the user pick the documented defaults.
type Spec struct {
	// ID names the instance's cgroup and scratch dir: letters, digits,
	// '.', '_' and '-', at most 128, not starting with '.' or '-'.
	ID string
	// Group, if set, names the instance's group (a function), by the same
	// rules: under contention for CPU, a group gets one share, however
	// many instances it runs, which share it by their memory. So one
	// function that runs many instances cannot crowd out another that
	// runs few.
	Group string
	// Argv is the runtime's command as seen inside; Argv[0] is an
	// absolute path inside the sandbox.
	Argv []string
	// Env is the runtime's whole environment: nothing else is added.
	Env []string
	// Dir is the working dir inside; default /var/task.
	Dir string
	// CodeDir is the host dir shown read-only at /var/task; if empty
	// /var/task is an empty dir.
	CodeDir string
	// RuntimeDir is the host dir shown read-only at /var/runtime, if set.
	RuntimeDir string
	// ReadOnly are more host paths shown read-only at the same path (after
	// resolving their symlinks), such as an interpreter's install dir. A
	// dir that is not inside one shown already is mounted under /var/ro and
	// reached through a symlink at its path, so that the sandbox's
	// mountinfo does not show the host's path; a file is bound, and does.
	ReadOnly []string
	// MemoryMB is the cgroup's memory limit, swap excluded where the
	// kernel accounts swap; default 128. The init's own few MB count too.
	MemoryMB int
	// PidsMax bounds the processes and threads of the sandbox, the init's
	// included; default 256.
	PidsMax int
	// TmpMB is the size of the private /tmp, a tmpfs whose pages count
	// against MemoryMB; default 512.
	TmpMB int
	// Network is "none" (the default: a net namespace of its own with only
	// lo up) or "host" (the host's network).
	Network string
	// UID and GID are the runtime's user and group, without supplementary
	// groups. Each left zero is the sandbox's own id, from the manager's
	// range. Root cannot be asked for.
	UID, GID int
	// Stdout and Stderr become the runtime's (and the init's) stdout and
	// stderr; nil means /dev/null. Start does not close them.
	Stdout, Stderr *os.File
}

// ExitStatus is how an instance's runtime ended.
type ExitStatus struct {
	// Code is the runtime's exit code, or -1 if a signal ended it.
	Code int
	// Signal is the signal that ended the runtime (or the init, when the
	// init itself was killed and could not report), else 0.
	Signal syscall.Signal
	// OOMKilled says the kernel killed a process of the sandbox for
	// going over its memory limit.
	OOMKilled bool
}

// Defaults of Spec.
const (
	DefaultMemoryMB = 128
	DefaultPidsMax  = 256
	DefaultTmpMB    = 512
)

// Defaults of ManagerConfig.
const (
	DefaultIDBase     = 200000
	DefaultIDCount    = 65536
	DefaultIDLockFile = "/run/wisp/ids.lock"
)

// Paths inside the sandbox.
const (
	TaskDir    = "/var/task"
	RuntimeDir = "/var/runtime"
)

// The listeners a sandbox without a network makes for the node, inside it.
const (
	RuntimeAPIAddr = "127.0.0.1:9001"
	WispAPIAddr    = "127.0.0.1:9002"
)
