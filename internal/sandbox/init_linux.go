package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostname is the sandbox's host name.
const hostname = "wisp"

// RunInit is the sandbox init's main, run by the node's executable when
// started with ManagerConfig.SelfArgs; it returns the exit code. It waits
// for its configuration on the control socket (fd 3), sets the sandbox up,
// runs the runtime as its only direct child, and exits with it: with its
// exit code, or 128 plus the signal that killed it.
func RunInit() int {
	// Capabilities are per thread: the bounding set is dropped on this
	// one, which then starts the runtime.
	runtime.LockOSThread()
	if err := closeInherited(); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		return 1
	}
	ctrl, err := fileConn(os.NewFile(controlFD, "sandbox-control"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		return 1
	}
	var cfg initConfig
	if _, err := receive(ctrl, &cfg, maxConfig); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		return 1
	}
	fail := func(err error) int {
		if err := send(ctrl, report{Kind: reportError, Error: err.Error()}); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox init:", err)
		}
		return 1
	}
	if os.Getpid() != 1 {
		return fail(errors.New("the init is not PID 1 of a new PID namespace"))
	}
	if cfg.Probe {
		rep := report{Kind: reportStarted}
		if err := probeOverlay(cfg.Root); err != nil {
			rep.NoOverlay = err.Error()
		}
		if err := send(ctrl, rep); err != nil {
			fmt.Fprintln(os.Stderr, "sandbox init:", err)
			return 1
		}
		return 0
	}
	// Caught from now on, forwarded once the runtime runs.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)

	listeners, err := setUp(&cfg)
	if err != nil {
		return fail(err)
	}
	child, err := startRuntime(&cfg)
	if err != nil {
		return fail(fmt.Errorf("start the runtime: %w", err))
	}
	err = send(ctrl, report{Kind: reportStarted}, listeners...)
	if err = errors.Join(err, closeFiles(listeners)); err != nil {
		// The node is gone or going; the runtime goes with us.
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
		return 1
	}

	ws := reap(child, sigs)
	rep := report{Kind: reportExit, Code: ws.ExitStatus()}
	code := rep.Code
	if ws.Signaled() {
		rep.Code, rep.Signal = -1, int(ws.Signal())
		code = 128 + rep.Signal
	}
	if err := send(ctrl, rep); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox init:", err)
	}
	return code
}

// closeInherited closes the fds the init inherited beyond its stdio and
// the control socket: those the node itself inherited without
// close-on-exec, which exec passes on. Whatever Go opens is close-on-exec,
// so an fd that is not was inherited.
func closeInherited() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= controlFD {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // the listing's own fd, closed since
		}
		if flags&unix.FD_CLOEXEC == 0 {
			if err := unix.Close(fd); err != nil {
				return fmt.Errorf("close inherited fd %d: %w", fd, err)
			}
		}
	}
	return nil
}

// setUp does everything before the runtime starts: the root, the host
// name, the network, dropping privileges, the resource limits and the
// seccomp filter. Without a network it returns the listeners made for
// the node.
func setUp(cfg *initConfig) ([]*os.File, error) {
	if err := buildRoot(cfg); err != nil {
		return nil, err
	}
	// The node's stdin was the host's /dev/null: nothing of the host stays.
	if err := replaceStdin(); err != nil {
		return nil, err
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return nil, fmt.Errorf("set the host name: %w", err)
	}
	var files []*os.File
	if cfg.Network == "none" {
		if err := loopbackUp(); err != nil {
			return nil, err
		}
		for _, addr := range []string{RuntimeAPIAddr, WispAPIAddr} {
			f, err := listen(addr)
			if err != nil {
				return nil, errors.Join(err, closeFiles(files))
			}
			files = append(files, f)
		}
	}
	if err := dropPrivileges(); err != nil {
		return nil, errors.Join(err, closeFiles(files))
	}
	if err := limitResources(); err != nil {
		return nil, errors.Join(err, closeFiles(files))
	}
	// Last: the filter binds the init too, which has nothing left to
	// mount.
	if err := installSeccomp(); err != nil {
		return nil, errors.Join(err, closeFiles(files))
	}
	return files, nil
}

// maxOpenFiles bounds the runtime's open files, soft and hard (or the
// node's own hard limit, if lower: the init may not raise it).
const maxOpenFiles = 4096

// limitResources sets the init's resource limits, soft and hard, which
// the runtime inherits and cannot raise. No core dumps: with a pipe in
// the host's core_pattern, a crash would run the host's helper as root.
// And a bound on open files, so one sandbox cannot pin a large share of
// the kernel's.
func limitResources() error {
	for _, l := range []struct {
		name     string
		resource int
		max      uint64
	}{
		{"RLIMIT_CORE", unix.RLIMIT_CORE, 0},
		{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, maxOpenFiles},
	} {
		// unix.Setrlimit goes through syscall's, which tells Go's exec
		// not to give the runtime back the soft NOFILE limit the init
		// started with.
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.resource, &cur); err != nil {
			return fmt.Errorf("get %s: %w", l.name, err)
		}
		lim := min(l.max, cur.Max)
		if err := unix.Setrlimit(l.resource, &unix.Rlimit{Cur: lim, Max: lim}); err != nil {
			return fmt.Errorf("set %s: %w", l.name, err)
		}
	}
	return nil
}

// replaceStdin makes the init's stdin the sandbox's /dev/null.
func replaceStdin() error {
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	err = unix.Dup3(fd, 0, 0)
	if err = errors.Join(err, unix.Close(fd)); err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	return nil
}

// loopbackUp brings lo up, as a new net namespace has it down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	ifr, err := unix.NewIfreq("lo")
	if err == nil {
		err = unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr)
	}
	if err == nil {
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
		err = unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
	}
	if err = errors.Join(err, unix.Close(fd)); err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	return nil
}

// listen returns a TCP listener on addr, in the sandbox's net namespace,
// as a file to pass to the node.
func listen(addr string) (*os.File, error) {
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		return nil, err
	}
	f, err := l.(*net.TCPListener).File()
	if cerr := l.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", addr, err)
	}
	return f, nil
}

// dropPrivileges makes sure nothing the runtime runs can gain a privilege:
// no new privileges on exec (setuid bits, file capabilities), and an
// empty bounding set and ambient set, on this thread, which starts the
// runtime. The init keeps its own capabilities, which it no longer needs
// but which an unprivileged user cannot reach.
func dropPrivileges() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	for c := 0; c < 64; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break // past the last capability the kernel knows
		}
		if err != nil {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: before Linux 4.3
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	return nil
}

// startRuntime starts the runtime as the sandbox user, with its own
// environment only, from the thread whose bounding set was dropped.
func startRuntime(cfg *initConfig) (*os.Process, error) {
	cmd := &exec.Cmd{
		Path:   cfg.Argv[0],
		Args:   cfg.Argv,
		Env:    cfg.Env, // non-nil, so the init's own is not added
		Dir:    cfg.Dir,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Credential: &syscall.Credential{Uid: uint32(cfg.UID), Gid: uint32(cfg.GID), Groups: []uint32{}},
			Setsid:     true,
		},
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	// exec's own error would name the executable for a chdir failure.
	if fi, err := os.Stat(cfg.Dir); err != nil {
		return nil, fmt.Errorf("working dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("working dir %s is not a dir", cfg.Dir)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd.Process, nil
}

// reap reaps every process that ends in the namespace, forwarding SIGTERM
// and SIGINT to the runtime, until the runtime ends, and returns its
// status.
func reap(child *os.Process, sigs chan os.Signal) unix.WaitStatus {
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case sig := <-sigs:
				// By pidfd: once reaped, the runtime's pid cannot be
				// reused under it.
				if err := child.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
					fmt.Fprintln(os.Stderr, "sandbox init: forwarding", sig, ":", err)
				}
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		<-forwarded
	}()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			// ECHILD: nothing left to wait for, which cannot be while
			// the runtime has not been reaped.
			fmt.Fprintln(os.Stderr, "sandbox init: wait:", err)
			return unix.WaitStatus(127 << 8) // exit status 127
		case pid == child.Pid:
			return ws
		}
	}
}
