// Package process owns the process runtime driver: an instance is a
// program speaking the AWS Lambda Runtime API (the function's own
// executable bootstrap, or the embedded Node or Python bootstrap), run in a
// process group of its own with a clean environment, and served by a
// Runtime API server of its own on a loopback port.
//
// With a sandbox.Manager the process runs under a sandbox init (its own
// namespaces, root and cgroups); without one it runs as the node's user,
// which the node allows only when told to (--insecure-no-sandbox).
package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/auth"
	"github.com/wisp-dev/wisp/internal/connlimit"
	"github.com/wisp-dev/wisp/internal/runtime"
	"github.com/wisp-dev/wisp/internal/runtime/bootstraps"
	"github.com/wisp-dev/wisp/internal/sandbox"
)

// Config configures a Driver. Only BootstrapDir is required.
type Config struct {
	BootstrapDir string        // where the Node/Python bootstraps are written (bootstraps.Command); required
	NodePath     string        // default "node", looked up in the node's PATH
	PythonPath   string        // default "python3", looked up in the node's PATH
	Region       string        // AWS_REGION/AWS_DEFAULT_REGION given to functions; default "us-east-1"
	InitTimeout  time.Duration // default 10s, as Lambda's init phase
	Logger       *slog.Logger  // default: discard

	// Sandbox, when set, runs every instance in a sandbox.
	Sandbox *sandbox.Manager
	// API is the node's HTTP API, served to sandboxed instances without a
	// network at WISP_API_URL; APIURL is where the others reach it.
	API    http.Handler
	APIURL string
	// Tokens issues each instance's WISP_API_TOKEN; nil gives none.
	Tokens *auth.FunctionTokens
	// Unavailable, when set, refuses every instance with this reason: the
	// node cannot sandbox and was not told to run without.
	Unavailable error
}

// basePath is the PATH of every instance, before the directories of the
// configured interpreters.
const basePath = "/usr/local/bin:/usr/bin:/bin"

// Driver starts process instances. It is safe for concurrent use.
type Driver struct {
	cfg    Config
	node   string // absolute path of node, or "" if not found
	python string // absolute path of python, or "" if not found
	// readOnly are host dirs a sandbox needs beside the system's: the
	// installs of the interpreters.
	readOnly []string
	path     string // the PATH instances get
	log      *slog.Logger
	// writeTimeout is the instances' servers'; tests shorten it.
	writeTimeout time.Duration
}

// New returns a driver. It looks the interpreters up now, so instances
// find them by absolute path whatever their own PATH; a missing one fails
// only the instances that need it.
func New(cfg Config) (*Driver, error) {
	if cfg.BootstrapDir == "" {
		return nil, errors.New("process: Config.BootstrapDir is required")
	}
	dir, err := filepath.Abs(cfg.BootstrapDir)
	if err != nil {
		return nil, fmt.Errorf("process: bootstrap dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("process: bootstrap dir: %w", err)
	}
	cfg.BootstrapDir = dir
	if cfg.NodePath == "" {
		cfg.NodePath = "node"
	}
	if cfg.PythonPath == "" {
		cfg.PythonPath = "python3"
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, log: cfg.Logger, path: basePath, writeTimeout: connlimit.WriteTimeout}
	d.node = d.lookPath(cfg.NodePath)
	d.python = d.lookPath(cfg.PythonPath)
	if cfg.Sandbox != nil {
		d.resolveForSandbox()
	}
	// The interpreters' own directories, so what they run (npm's
	// binaries, a pyenv shim's target) is found too.
	for _, p := range []string{d.node, d.python} {
		if p == "" {
			continue
		}
		if dir := filepath.Dir(p); !slices.Contains(filepath.SplitList(d.path), dir) {
			d.path += string(filepath.ListSeparator) + dir
		}
	}
	return d, nil
}

// resolveForSandbox finds the real interpreters behind shims (a pyenv
// shim is a shell script that needs the user's home) and the install
// dirs a sandbox must show read-only.
func (d *Driver) resolveForSandbox() {
	if d.python != "" {
		out, err := exec.Command(d.python, "-c", "import sys; print(sys.executable); print(sys.base_prefix)").Output()
		if lines := strings.Fields(string(out)); err == nil && len(lines) == 2 {
			d.python = lines[0]
			d.readOnly = append(d.readOnly, lines[1])
		} else {
			d.log.Warn("process: cannot ask python where it lives; python functions will fail", "path", d.python, "err", err)
			d.python = ""
		}
	}
	if d.node != "" {
		if real, err := filepath.EvalSymlinks(d.node); err == nil {
			d.node = real
		}
	}
	for _, p := range []string{d.node, d.python} {
		if p == "" || underSystemDirs(p) {
			continue
		}
		// bin/node → the install above bin.
		d.readOnly = append(d.readOnly, filepath.Dir(filepath.Dir(p)))
	}
	d.path = basePath
	for _, p := range []string{d.node, d.python} {
		if dir := filepath.Dir(p); p != "" && !slices.Contains(filepath.SplitList(d.path), dir) {
			d.path += string(filepath.ListSeparator) + dir
		}
	}
}

// underSystemDirs says whether a sandbox shows path anyway.
func underSystemDirs(path string) bool {
	for _, dir := range []string{"/usr/", "/bin/", "/lib/", "/lib64/", "/sbin/"} {
		if strings.HasPrefix(path, dir) {
			return true
		}
	}
	return false
}

// lookPath returns the absolute path of an interpreter, or "" if it is not
// there.
func (d *Driver) lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err == nil {
		p, err = filepath.Abs(p)
	}
	if err != nil {
		d.log.Debug("process: interpreter not found", "name", name, "err", err)
		return ""
	}
	return p
}

// Start starts an instance and returns once its runtime has asked for its
// first invocation. ctx bounds the init only.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	if d.cfg.Unavailable != nil {
		return nil, runtime.NewInitError(runtime.ErrTypeInit, "this node cannot sandbox function instances ("+
			d.cfg.Unavailable.Error()+") and was not started with --insecure-no-sandbox")
	}
	if spec.CodeDir == "" {
		return nil, errors.New("process: Spec.CodeDir is required")
	}
	codeDir, err := filepath.Abs(spec.CodeDir)
	if err != nil {
		return nil, fmt.Errorf("process: code dir: %w", err)
	}
	argv, err := d.command(spec.Runtime, codeDir)
	if err != nil {
		return nil, err
	}
	var i *instance
	if d.cfg.Sandbox != nil {
		i, err = d.startSandboxed(ctx, spec, codeDir, argv)
	} else {
		i, err = d.start(spec, codeDir, argv)
	}
	if err != nil {
		return nil, err
	}
	if err := i.waitReady(ctx, d.cfg.InitTimeout); err != nil {
		return nil, err
	}
	if p, ok := i.proc.(*sandboxProc); ok {
		// The init ran uncapped, as Lambda boosts init; invocations get
		// the function's memory's share of a CPU.
		if err := p.sb.CapCPU(); err != nil {
			return nil, errors.Join(fmt.Errorf("process: %w", err), i.Stop())
		}
	}
	d.log.Debug("process: instance ready", "function", spec.Function, "version", spec.Version,
		"instance", spec.InstanceID, "pid", i.proc.pid(), "init", i.initDur)
	return i, nil
}

// command returns the argv that runs the runtime.
func (d *Driver) command(rt, codeDir string) ([]string, error) {
	var interp string
	switch rt {
	case "provided", "go":
		path := filepath.Join(codeDir, "bootstrap")
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, "Couldn't find valid bootstrap(s): the code has no bootstrap file")
		case err != nil:
			return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, "bootstrap: "+runtime.UnwrapPath(err).Error())
		case !fi.Mode().IsRegular():
			return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, "bootstrap is not a regular file")
		case fi.Mode().Perm()&0o111 == 0:
			return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, "bootstrap is not executable (permission denied)")
		}
		return []string{path}, nil
	case "nodejs":
		interp = d.node
	case "python":
		interp = d.python
	default:
		return nil, fmt.Errorf("process: unknown runtime %q", rt)
	}
	if interp == "" {
		name := d.cfg.NodePath
		if rt == "python" {
			name = d.cfg.PythonPath
		}
		// Not the function's fault, but its init cannot succeed.
		return nil, runtime.NewInitError(runtime.ErrTypeInit, fmt.Sprintf("the %s runtime is not available on this node: %s not found", rt, name))
	}
	argv, err := bootstraps.Command(rt, interp, d.cfg.BootstrapDir)
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	return argv, nil
}

// start starts the process and the instance's goroutines.
func (d *Driver) start(spec runtime.Spec, codeDir string, argv []string) (*instance, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("process: runtime API listener: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("process: %w", err), ln.Close())
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("process: %w", err), ln.Close(), outR.Close(), outW.Close())
	}
	i := newInstance(spec, d.log)
	i.streams[0], err = newStream("stdout", outR, i)
	if err == nil {
		i.streams[1], err = newStream("stderr", errR, i)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("process: %w", err), ln.Close(), outR.Close(), outW.Close(), errR.Close(), errW.Close())
	}
	pl := places{taskRoot: codeDir, runtimeDir: d.cfg.BootstrapDir, runtimeAPI: ln.Addr().String(), apiURL: d.cfg.APIURL}
	if d.cfg.Tokens != nil {
		pl.apiToken = d.cfg.Tokens.Issue(spec.Function)
		i.cleanup = append(i.cleanup, func() { d.cfg.Tokens.Revoke(pl.apiToken) })
	}
	cmd := &exec.Cmd{
		Path:        argv[0],
		Args:        argv,
		Env:         d.env(spec, pl, time.Now()),
		Dir:         codeDir,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: sysProcAttr(),
	}
	i.start = time.Now()
	err = cmd.Start()
	// The child has its copies; ours would keep the pipes from ending.
	closeErr := errors.Join(outW.Close(), errW.Close())
	if err != nil {
		cleanup := errors.Join(ln.Close(), outR.Close(), errR.Close(), closeErr)
		if cleanup != nil {
			d.log.Warn("process: cleaning up a failed start", "err", cleanup)
		}
		for _, f := range i.cleanup {
			f()
		}
		typ := runtime.ErrTypeInit
		if spec.Runtime == "provided" || spec.Runtime == "go" {
			typ = runtime.ErrTypeInvalidEntrypoint
		}
		return nil, runtime.NewInitError(typ, "cannot run "+filepath.Base(argv[0])+": "+runtime.UnwrapPath(err).Error())
	}
	i.proc = newPlainProc(cmd, d.log)
	if closeErr != nil {
		d.log.Warn("process: closing pipe ends", "err", closeErr)
	}

	d.run(i, ln)
	return i, nil
}

// run starts an instance's goroutines: its Runtime API server on ln, its
// output readers and its wait.
func (d *Driver) run(i *instance, ln net.Listener) {
	cl := instanceListener(ln, d.log)
	i.srv = d.instanceServer(i, cl)
	go func() {
		defer close(i.served)
		if err := i.srv.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("process: runtime API server", "instance", i.spec.InstanceID, "err", err)
		}
	}()
	go i.streams[0].run()
	go i.streams[1].run()
	go i.wait()
}

// startSandboxed starts the runtime under a sandbox init. Without a
// network the init makes the Runtime API's and Wisp's API's listeners
// inside the sandbox, at 127.0.0.1:9001 and :9002, and hands them over.
func (d *Driver) startSandboxed(ctx context.Context, spec runtime.Spec, codeDir string, hostArgv []string) (*instance, error) {
	argv := slices.Clone(hostArgv)
	switch {
	case strings.HasPrefix(argv[0], codeDir+"/"):
		argv[0] = sandboxTaskRoot + strings.TrimPrefix(argv[0], codeDir)
	case len(argv) > 1:
		argv[1] = sandboxRuntimeDir + strings.TrimPrefix(argv[1], d.cfg.BootstrapDir)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("process: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("process: %w", err), outR.Close(), outW.Close())
	}
	i := newInstance(spec, d.log)
	i.streams[0], err = newStream("stdout", outR, i)
	if err == nil {
		i.streams[1], err = newStream("stderr", errR, i)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("process: %w", err), outR.Close(), outW.Close(), errR.Close(), errW.Close())
	}
	network := spec.Network
	if network == "" {
		network = "none"
	}
	pl := places{taskRoot: sandboxTaskRoot, runtimeDir: sandboxRuntimeDir, apiURL: "http://127.0.0.1:9002",
		runtimeAPI: "127.0.0.1:9001"}
	var hostLn net.Listener
	if network == "host" {
		if hostLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, errors.Join(fmt.Errorf("process: runtime API listener: %w", err), outR.Close(), outW.Close(), errR.Close(), errW.Close())
		}
		pl.runtimeAPI, pl.apiURL = hostLn.Addr().String(), d.cfg.APIURL
	}
	if d.cfg.Tokens != nil {
		pl.apiToken = d.cfg.Tokens.Issue(spec.Function)
		i.cleanup = append(i.cleanup, func() { d.cfg.Tokens.Revoke(pl.apiToken) })
	}
	mem := spec.MemoryMB
	if mem <= 0 {
		mem = 128
	}
	i.start = time.Now()
	sb, err := d.cfg.Sandbox.Start(ctx, sandbox.Spec{
		ID: spec.InstanceID, Group: spec.Function, Argv: argv, Env: d.env(spec, pl, time.Now()), Dir: sandboxTaskRoot,
		CodeDir: codeDir, RuntimeDir: d.cfg.BootstrapDir, ReadOnly: d.readOnly,
		MemoryMB: mem, Network: network, Stdout: outW, Stderr: errW,
	})
	closeErr := errors.Join(outW.Close(), errW.Close())
	if err != nil {
		for _, f := range i.cleanup {
			f()
		}
		cleanup := errors.Join(outR.Close(), errR.Close(), closeErr)
		if hostLn != nil {
			cleanup = errors.Join(cleanup, hostLn.Close())
		}
		if cleanup != nil {
			d.log.Warn("process: cleaning up a failed sandbox start", "err", cleanup)
		}
		return nil, runtime.NewInitError(runtime.ErrTypeInit, "the sandbox did not start: "+err.Error())
	}
	i.proc = &sandboxProc{sb: sb, log: d.log}
	runtimeLn, apiLn := sb.Listeners()
	if hostLn != nil {
		runtimeLn = &peerListener{Listener: hostLn, owner: sb.Pids, log: d.log}
	}
	if apiLn != nil && d.cfg.API != nil {
		cl := instanceListener(apiLn, d.log)
		api := d.instanceServer(d.cfg.API, cl)
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := api.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Debug("process: wisp API server in a sandbox", "instance", spec.InstanceID, "err", err)
			}
		}()
		i.cleanup = append(i.cleanup, func() {
			if err := api.Close(); err != nil {
				d.log.Debug("process: closing a sandbox's wisp API server", "err", err)
			}
			<-served
		})
	}
	d.run(i, runtimeLn)
	return i, nil
}

// places are where an instance finds its code, its runtime and the APIs.
type places struct {
	taskRoot, runtimeDir string
	runtimeAPI           string // host:port
	apiURL, apiToken     string // Wisp's API, if any
}

// env returns the instance's environment: nothing of the node's own, the
// Lambda variables, and the function's, which cannot override the AWS_ and
// LAMBDA_ ones.
func (d *Driver) env(spec runtime.Spec, pl places, now time.Time) []string {
	env := []string{
		"PATH=" + d.path,
		"LANG=C.UTF-8",
		"HOME=/tmp",
		"TZ=:UTC",
	}
	// The function may change the four above, as on Lambda; where a name
	// comes twice, exec keeps the last.
	own, dropped := runtime.FunctionEnv(spec.Env)
	if len(dropped) > 0 {
		d.log.Debug("process: function variables ignored", "function", spec.Function, "names", dropped)
	}
	env = append(env, own...)
	if pl.apiURL != "" {
		env = append(env, "WISP_API_URL="+pl.apiURL)
	}
	if pl.apiToken != "" {
		env = append(env, "WISP_API_TOKEN="+pl.apiToken)
	}
	env = append(env,
		"LAMBDA_TASK_ROOT="+pl.taskRoot,
		"LAMBDA_RUNTIME_DIR="+pl.runtimeDir,
		"_HANDLER="+spec.Handler,
		"AWS_LAMBDA_RUNTIME_API="+pl.runtimeAPI,
	)
	return append(env, runtime.LambdaEnv(spec, d.cfg.Region, now)...)
}
