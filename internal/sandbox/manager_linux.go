package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// startTimeout bounds how long the init may take to set up, whatever the
// caller's context.
const startTimeout = 10 * time.Second

// probeTimeout bounds NewManager's trial init.
const probeTimeout = 5 * time.Second

// Manager starts sandboxes. It is safe for concurrent use.
type Manager struct {
	self     string
	selfArgs []string
	stateDir string
	log      *slog.Logger
	cg       *hierarchy
	ids      *idRange
	idLock   *os.File // holds ids's range, host-wide, until Close
	// overlay says the kernel mounts the overlays that keep host paths
	// out of a sandbox's mountinfo; without, dirs are bound.
	overlay bool

	closeOnce sync.Once
	closeErr  error // written before closeOnce is done
}

// NewManager checks that this host can sandbox (root, namespaces, cgroups
// with the memory, pids and cpu controllers writable), and returns a
// manager, or an error that says what is missing.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Self == "" {
		return nil, errors.New("sandbox: ManagerConfig.Self is required")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("sandbox: ManagerConfig.StateDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IDBase == 0 {
		cfg.IDBase = DefaultIDBase
	}
	if cfg.IDCount == 0 {
		cfg.IDCount = DefaultIDCount
	}
	if cfg.IDLockFile == "" {
		cfg.IDLockFile = DefaultIDLockFile
	}
	// The top id, 2^32-1, is the kernel's "no id".
	if cfg.IDBase < 1 || cfg.IDCount < 1 || int64(cfg.IDBase)+int64(cfg.IDCount) > 1<<32-1 {
		return nil, fmt.Errorf("sandbox: ids %d+%d: not a range of host ids past root", cfg.IDBase, cfg.IDCount)
	}
	if uid := os.Geteuid(); uid != 0 {
		return nil, fmt.Errorf("sandbox: needs root to make namespaces and cgroups (running as uid %d)", uid)
	}
	if _, err := seccompFilter(); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	self, err := filepath.Abs(cfg.Self)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if _, err := os.Stat(self); err != nil {
		return nil, fmt.Errorf("sandbox: the init executable: %w", err)
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	// Resolved, to compare with the resolved read-only paths.
	if stateDir, err = filepath.EvalSymlinks(stateDir); err != nil {
		return nil, fmt.Errorf("sandbox: state dir: %w", err)
	}
	cg, err := detectHierarchy(cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	ids, idLock, err := claimIDs(cfg.IDLockFile, cfg.IDBase, cfg.IDCount)
	if err != nil {
		return nil, err
	}
	m := &Manager{self: self, selfArgs: cfg.SelfArgs, stateDir: stateDir, log: cfg.Logger, cg: cg,
		ids: ids, idLock: idLock}
	if err := m.check(); err != nil {
		return nil, errors.Join(err, m.Close())
	}
	m.log.Debug("sandbox: ready", "cgroup_version", cg.version, "parents", cg.parents,
		"ids", fmt.Sprintf("%d-%d", ids.base, ids.base+ids.count-1))
	return m, nil
}

// check makes and removes a cgroup, its limits written as a sandbox's
// would be, and runs the trial init.
func (m *Manager) check() error {
	probeID := fmt.Sprintf("probe-%d-%x", os.Getpid(), rand.Uint32())
	g, err := m.cg.create(probeID, limits{memoryMB: DefaultMemoryMB, pidsMax: DefaultPidsMax})
	if err != nil {
		return fmt.Errorf("sandbox: cgroup v%d: %w", m.cg.version, err)
	}
	if err := g.destroy(); err != nil {
		return fmt.Errorf("sandbox: cgroup v%d: %w", m.cg.version, err)
	}
	if err := m.probe(); err != nil {
		return fmt.Errorf("sandbox: namespaces: %w", err)
	}
	return nil
}

// Close gives the manager's range of ids back, for another node to take.
// Close the sandboxes first: one still running keeps running as its id.
// It may be called more than once.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		if err := m.idLock.Close(); err != nil {
			m.closeErr = fmt.Errorf("sandbox: close: %w", err)
		}
	})
	return m.closeErr
}

// CgroupVersion returns 1 or 2.
func (m *Manager) CgroupVersion() int { return m.cg.version }

// probe starts an init in new namespaces, network included, and waits for
// it to answer from PID 1 there. This also proves Self and SelfArgs reach
// RunInit. The init tries an overlay mount too, in a dir of the state
// dir, and says whether it could.
func (m *Manager) probe() (err error) {
	dir, err := os.MkdirTemp(m.stateDir, "probe-")
	if err != nil {
		return err
	}
	// The init's mounts went with its namespace.
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	cmd, ctrl, err := m.spawn(nil, true, nil, nil)
	if err != nil {
		return err
	}
	var rep report
	err = send(ctrl, initConfig{Probe: true, Root: dir})
	if err == nil {
		err = ctrl.SetReadDeadline(time.Now().Add(probeTimeout))
	}
	if err == nil {
		_, err = receive(ctrl, &rep, maxReport)
	}
	if err == nil && rep.Kind != reportStarted {
		err = fmt.Errorf("the init answered %q: %s", rep.Kind, rep.Error)
	}
	if err != nil {
		err = errors.Join(fmt.Errorf("trial init (%s %s): %w", m.self, strings.Join(m.selfArgs, " "), err), ignoreDone(cmd.Process.Kill()))
	}
	werr := cmd.Wait()
	if err == nil && werr != nil {
		err = fmt.Errorf("trial init: %w", werr)
	}
	m.overlay = err == nil && rep.NoOverlay == ""
	if err == nil && !m.overlay {
		m.log.Warn("sandbox: no overlayfs here: code and runtime dirs are bound, and their host paths show in a sandbox's /proc/self/mountinfo",
			"err", rep.NoOverlay)
	}
	return errors.Join(err, ctrl.Close())
}

// startInit makes the cgroup named id and starts an init in it. On v2 the
// init is born in its cgroup. On v1 it is attached once started, so the
// cgroup is made while the init starts up, which takes it milliseconds:
// the init does nothing before it has its configuration, sent once it is
// in its cgroup.
func (m *Manager) startInit(id string, lim limits, newNet bool, stdout, stderr *os.File) (*exec.Cmd, *net.UnixConn, *cgroup, error) {
	if m.cg.version == 2 {
		g, err := m.cg.create(id, lim)
		if err != nil {
			return nil, nil, nil, err
		}
		cmd, ctrl, err := m.spawn(g, newNet, stdout, stderr)
		if err != nil {
			return nil, nil, nil, errors.Join(err, g.destroy())
		}
		return cmd, ctrl, g, nil
	}
	cmd, ctrl, err := m.spawn(nil, newNet, stdout, stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	g, err := m.cg.create(id, lim)
	if err == nil {
		err = g.attach(cmd.Process.Pid)
	}
	if err != nil {
		err = errors.Join(err, ignoreDone(cmd.Process.Kill()), waitKilled(cmd), ctrl.Close())
		if g != nil {
			err = errors.Join(err, g.destroy())
		}
		return nil, nil, nil, err
	}
	return cmd, ctrl, g, nil
}

// spawn starts an init in new namespaces (a net namespace too if newNet),
// in cgroup g if not nil. The init waits for its configuration on the
// returned connection.
func (m *Manager) spawn(g *cgroup, newNet bool, stdout, stderr *os.File) (*exec.Cmd, *net.UnixConn, error) {
	ctrl, initEnd, err := socketpair()
	if err != nil {
		return nil, nil, err
	}
	flags := uintptr(unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP)
	if newNet {
		flags |= unix.CLONE_NEWNET
	}
	// The init needs nothing of the node's environment; one P is plenty,
	// and keeps its threads, which pids.max counts, few.
	env := []string{"GOMAXPROCS=1"}
	if v, ok := os.LookupEnv("GORACE"); ok {
		env = append(env, "GORACE="+v) // a -race build's options
	}
	cmd := &exec.Cmd{
		Path:       m.self,
		Args:       append([]string{m.self}, m.selfArgs...),
		Env:        env,
		ExtraFiles: []*os.File{initEnd}, // fd 3: controlFD
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: flags,
			// Killed with the node; the namespace dies with it. As in
			// the process driver, this is tied to the starting thread,
			// which Go ends only under runtime.LockOSThread.
			Pdeathsig: syscall.SIGKILL,
			Setpgid:   true,
		},
	}
	// A typed nil would reach exec.Cmd as a non-nil writer.
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if stderr != nil {
		cmd.Stderr = stderr
	}
	attach := g != nil
	if g != nil && g.version == 2 {
		// Born in its cgroup (clone3 CLONE_INTO_CGROUP, Linux 5.7).
		fd, ferr := g.open()
		if ferr != nil {
			return nil, nil, errors.Join(fmt.Errorf("cgroup: %w", ferr), ctrl.Close(), initEnd.Close())
		}
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
		serr := cmd.Start()
		if cerr := unix.Close(fd); cerr != nil {
			m.log.Debug("sandbox: closing a cgroup fd", "err", cerr)
		}
		if serr == nil {
			attach = false
		} else {
			m.log.Debug("sandbox: starting the init in its cgroup failed; attaching after start", "err", serr)
			cmd = &exec.Cmd{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, ExtraFiles: cmd.ExtraFiles,
				Stdout: cmd.Stdout, Stderr: cmd.Stderr, SysProcAttr: cmd.SysProcAttr}
			cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = false, 0
		}
	}
	if cmd.Process == nil {
		err = cmd.Start()
	}
	if cerr := initEnd.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("start the init: %w", err), ctrl.Close())
	}
	if attach {
		// The init does nothing before it has its configuration, so it is
		// in its cgroups before anything of the function runs.
		if err := g.attach(cmd.Process.Pid); err != nil {
			return nil, nil, errors.Join(err, ignoreDone(cmd.Process.Kill()), waitKilled(cmd), ctrl.Close())
		}
	}
	return cmd, ctrl, nil
}

// waitKilled reaps a killed init; its exit status says nothing.
func waitKilled(cmd *exec.Cmd) error {
	var ee *exec.ExitError
	if err := cmd.Wait(); err != nil && !errors.As(err, &ee) {
		return err
	}
	return nil
}

// ignoreDone drops the error of killing a process that has ended.
func ignoreDone(err error) error {
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// validID says whether id may be a Spec.ID: letters, digits, '.', '_'
// and '-', at most 128, not starting with '.' or '-'. Not a regexp: every
// sandbox init runs the package's initialization, and compiling the
// regexp's {0,127} took 0.7 to 0.9 ms of each start.
func validID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// withDefaults checks spec and fills in its defaults, but for its ids.
func (m *Manager) withDefaults(spec Spec) (Spec, error) {
	if spec.Group != "" && !validID(spec.Group) {
		return spec, fmt.Errorf("sandbox: group %q: letters, digits, '.', '_' and '-' only, at most 128, not starting with '.' or '-'", spec.Group)
	}
	if !validID(spec.ID) {
		return spec, fmt.Errorf("sandbox: invalid instance id %q", spec.ID)
	}
	if len(spec.Argv) == 0 || !filepath.IsAbs(spec.Argv[0]) {
		return spec, errors.New("sandbox: Spec.Argv[0] must be an absolute path inside the sandbox")
	}
	if spec.Dir == "" {
		spec.Dir = TaskDir
	}
	if !filepath.IsAbs(spec.Dir) {
		return spec, fmt.Errorf("sandbox: Spec.Dir %q is not absolute", spec.Dir)
	}
	if spec.Env == nil {
		spec.Env = []string{}
	}
	var err error
	for _, p := range []*string{&spec.CodeDir, &spec.RuntimeDir} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return spec, fmt.Errorf("sandbox: %w", err)
			}
		}
	}
	ro := make([]string, 0, len(spec.ReadOnly))
	for _, p := range spec.ReadOnly {
		if !filepath.IsAbs(p) {
			return spec, fmt.Errorf("sandbox: read-only path %q is not absolute", p)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return spec, fmt.Errorf("sandbox: read-only path: %w", err)
		}
		if real == "/" || strings.HasPrefix(m.stateDir+"/", strings.TrimSuffix(real, "/")+"/") {
			return spec, fmt.Errorf("sandbox: read-only path %q would show the sandboxes' state dir", p)
		}
		ro = append(ro, real)
	}
	spec.ReadOnly = ro
	if spec.MemoryMB <= 0 {
		spec.MemoryMB = DefaultMemoryMB
	}
	if spec.PidsMax <= 0 {
		spec.PidsMax = DefaultPidsMax
	}
	if spec.TmpMB <= 0 {
		spec.TmpMB = DefaultTmpMB
	}
	switch spec.Network {
	case "":
		spec.Network = "none"
	case "none", "host":
	default:
		return spec, fmt.Errorf("sandbox: unknown network %q", spec.Network)
	}
	return spec, nil
}

// Sandbox is one running sandbox: its init, its cgroup and its scratch
// dir.
type Sandbox struct {
	cmd      *exec.Cmd
	ctrl     *net.UnixConn // read by wait only, once started
	cg       *cgroup
	scratch  string
	ids      *idRange // where uid and gid go back at Close
	uid, gid int
	memoryMB int
	overlay  bool // the manager's
	log      *slog.Logger

	runtimeAPI, wispAPI net.Listener

	waitOnce sync.Once
	status   ExitStatus // written before waitOnce is done
	waitErr  error      // written before waitOnce is done

	closeOnce sync.Once
	closeErr  error // written before closeOnce is done
}

// Start starts a sandbox and returns once its runtime has been started,
// or with the error that stopped the init setting it up. ctx bounds the
// start only.
func (m *Manager) Start(ctx context.Context, spec Spec) (*Sandbox, error) {
	spec, err := m.withDefaults(spec)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox: start: %w", err)
	}
	if spec.UID, spec.GID, err = m.ids.acquire(spec.UID, spec.GID); err != nil {
		return nil, err
	}
	scratch := filepath.Join(m.stateDir, spec.ID)
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		m.ids.release(spec.UID, spec.GID)
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	cmd, ctrl, g, err := m.startInit(spec.ID, limits{memoryMB: spec.MemoryMB, pidsMax: spec.PidsMax, group: spec.Group},
		spec.Network == "none", spec.Stdout, spec.Stderr)
	if err != nil {
		// Nothing ran as the ids.
		m.ids.release(spec.UID, spec.GID)
		return nil, errors.Join(fmt.Errorf("sandbox: %w", err), os.RemoveAll(scratch))
	}
	s := &Sandbox{cmd: cmd, ctrl: ctrl, cg: g, scratch: scratch, ids: m.ids, uid: spec.UID, gid: spec.GID,
		memoryMB: spec.MemoryMB, overlay: m.overlay, log: m.log}
	if err := s.handshake(ctx, spec); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// handshake configures the init and waits for it to report the runtime
// started.
func (s *Sandbox) handshake(ctx context.Context, spec Spec) error {
	cfg := initConfig{
		Root: s.scratch, Argv: spec.Argv, Env: spec.Env, Dir: spec.Dir,
		CodeDir: spec.CodeDir, RuntimeDir: spec.RuntimeDir, ReadOnly: spec.ReadOnly,
		TmpMB: spec.TmpMB, Network: spec.Network, UID: spec.UID, GID: spec.GID, Overlay: s.overlay,
	}
	if err := send(s.ctrl, cfg); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if err := s.ctrl.SetReadDeadline(time.Now()); err != nil {
			s.log.Debug("sandbox: interrupting a start", "err", err)
		}
	})
	var rep report
	files, err := receive(s.ctrl, &rep, maxReport)
	if !stop() {
		// Too late for Start to succeed: the deadline may be set.
		err = errors.Join(fmt.Errorf("sandbox: start: %w", context.Cause(ctx)), closeFiles(files))
		return err
	}
	if err != nil {
		if errors.Is(err, errEOF) {
			return errors.New("sandbox: the init exited before starting the runtime")
		}
		return fmt.Errorf("sandbox: %w", err)
	}
	switch rep.Kind {
	case reportStarted:
	case reportError:
		return errors.Join(fmt.Errorf("sandbox: %s", rep.Error), closeFiles(files))
	default:
		return errors.Join(fmt.Errorf("sandbox: the init answered %q", rep.Kind), closeFiles(files))
	}
	if spec.Network != "none" {
		return closeFiles(files)
	}
	if len(files) != 2 {
		return errors.Join(fmt.Errorf("sandbox: the init passed %d listeners, not 2", len(files)), closeFiles(files))
	}
	var lns [2]net.Listener
	for i, f := range files {
		lns[i], err = net.FileListener(f)
		if err != nil {
			break
		}
	}
	err = errors.Join(err, closeFiles(files))
	if err != nil {
		for _, l := range lns {
			if l != nil {
				err = errors.Join(err, l.Close())
			}
		}
		return fmt.Errorf("sandbox: listeners: %w", err)
	}
	s.runtimeAPI, s.wispAPI = lns[0], lns[1]
	return nil
}

func closeFiles(files []*os.File) error {
	var err error
	for _, f := range files {
		err = errors.Join(err, f.Close())
	}
	return err
}

// Pid returns the host pid of the sandbox's init.
func (s *Sandbox) Pid() int { return s.cmd.Process.Pid }

// Listeners returns, for a sandbox without a network, the listeners the
// init made inside it at RuntimeAPIAddr and WispAPIAddr, for the node to
// serve on; with the host's network, nil and nil. The caller closes them.
func (s *Sandbox) Listeners() (runtimeAPI, wispAPI net.Listener) {
	return s.runtimeAPI, s.wispAPI
}

// Wait waits for the init to exit and returns how the runtime ended. It
// may be called more than once, and concurrently with Kill.
func (s *Sandbox) Wait() (ExitStatus, error) {
	s.waitOnce.Do(s.wait)
	return s.status, s.waitErr
}

func (s *Sandbox) wait() {
	var exit *report
	for {
		var rep report
		files, err := receive(s.ctrl, &rep, maxReport)
		if cerr := closeFiles(files); cerr != nil {
			s.log.Debug("sandbox: closing unexpected files", "err", cerr)
		}
		if err != nil {
			// The end of the init, normally.
			if !errors.Is(err, errEOF) {
				s.log.Debug("sandbox: control socket", "pid", s.Pid(), "err", err)
			}
			break
		}
		if rep.Kind == reportExit {
			exit = &rep
		}
	}
	err := s.cmd.Wait()
	if cerr := s.ctrl.Close(); cerr != nil {
		s.log.Debug("sandbox: closing the control socket", "err", cerr)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		s.waitErr = fmt.Errorf("sandbox: %w", err)
	}
	ws, _ := s.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case exit != nil:
		s.status = ExitStatus{Code: exit.Code, Signal: syscall.Signal(exit.Signal)}
	case ws.Signaled():
		s.status = ExitStatus{Code: -1, Signal: ws.Signal()}
	default:
		s.status = ExitStatus{Code: ws.ExitStatus()}
		if s.waitErr == nil {
			s.waitErr = fmt.Errorf("sandbox: the init exited (%s) without reporting the runtime's exit", s.cmd.ProcessState)
		}
	}
	if n, err := s.cg.oomKills(); err == nil {
		s.status.OOMKilled = n > 0
	} else {
		s.log.Debug("sandbox: reading the OOM kill count", "err", err)
	}
}

// Kill kills the init, and with it every process of the sandbox. Killing
// a sandbox that has ended is not an error.
func (s *Sandbox) Kill() error {
	return ignoreDone(s.cmd.Process.Kill())
}

// CapCPU caps the sandbox's CPU, beside its share, at its memory's share
// of a CPU: MemoryMB/1769 of one, as Lambda gives. A sandbox starts
// uncapped, so its runtime's init runs at the machine's speed (Lambda
// boosts init too); the caller caps it once the runtime is ready.
func (s *Sandbox) CapCPU() error {
	if err := s.cg.capCPU(s.memoryMB); err != nil {
		return fmt.Errorf("sandbox: cpu cap: %w", err)
	}
	return nil
}

// MaxMemoryMB returns the sandbox's peak memory use in MiB, rounded up,
// or 0 where the kernel does not say. It is there until Close.
func (s *Sandbox) MaxMemoryMB() int {
	b, err := s.cg.peakBytes()
	if err != nil {
		return 0
	}
	return int((b + 1<<20 - 1) >> 20)
}

// Close removes the sandbox's cgroups and scratch dir, and gives its ids
// back. It kills and waits for a sandbox still running.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() {
		err := s.Kill()
		if _, werr := s.Wait(); werr != nil {
			// Wait's caller has had it; Close says only what it failed at.
			s.log.Debug("sandbox: waiting for a sandbox to close", "pid", s.Pid(), "err", werr)
		}
		derr := s.cg.destroy()
		if derr == nil {
			// Nothing of the sandbox is left to run as its ids.
			s.ids.release(s.uid, s.gid)
		}
		s.closeErr = errors.Join(err, derr, os.RemoveAll(s.scratch))
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("sandbox: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}
