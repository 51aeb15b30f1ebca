// Package wasm owns the wasm runtime driver: a function is a WebAssembly
// module built for WASI preview 1, run with wazero: by default a command
// (exporting _start) instantiated afresh for every invocation, or, for a
// function with reuse on, a reactor whose one module instance serves
// invocation after invocation (see Reuse mode). The function's handler
// names the module's file in its code, e.g. main.wasm.
//
// The contract with a command: the event JSON on stdin, the response on
// stdout, logs on stderr (each line goes to the logs tagged with the
// request id). The module fails an invocation by exiting non-zero; the
// last line it wrote on stderr is the errorMessage, with errorType
// Runtime.ExitError, the type Lambda gives a function whose process exits
// during an invocation. For a Go guest that panicked (exit status 2) the
// message is the "panic: …" or "fatal error: …" line instead, as the last
// line of a Go crash is a stack frame. Other endings:
//
//   - a trap (unreachable, an out-of-bounds access, a stack overflow, …)
//     is Runtime.WasmTrap, with the trap as errorMessage and the wasm
//     stack as stackTrace;
//   - a module that failed after its memory could not grow past the
//     function's memory is Runtime.OutOfMemory;
//   - a module still running at the deadline is stopped, and the
//     invocation is Sandbox.Timedout, as in the process driver;
//   - more than runtime.MaxResponseBytes on stdout is
//     Function.ResponseSizeTooLarge;
//   - an empty stdout is the response null.
//
// The module sees the Lambda environment variables (not
// AWS_LAMBDA_RUNTIME_API: there is no Runtime API), the function's own, a
// read-only view of the code at /var/task (also its working directory),
// and the host's wall clock, monotonic clock and random source. It sees no
// network and no other files. Its linear memory is limited to the
// function's memory (MB × 16 pages of 64 KiB, at most 4 GiB).
//
// A module is compiled once: the machine code is kept in memory, shared by
// every instance of every version whose code and handler are the same, and
// written to a compilation cache on disk, so a restarted node does not
// compile it again. In fresh mode an Instance of this driver is cheap:
// Start only finds (or compiles) the module, and every Invoke instantiates
// it afresh, so nothing an invocation does survives it and an instance
// stays reusable after a trap or a timeout.
//
// Three things keep that path fast and the node safe. The memory limit is
// enforced per instantiation by an allocator of ours (wazero's
// experimental MemoryAllocator) rather than by a runtime per memory size,
// so one runtime and one compiled module serve every version, and a
// refused grow is seen, which is how Runtime.OutOfMemory is told from
// other failures. Before compiling, a module's data segments are merged
// where only a few zeros separate them (Go's linker writes tens of
// thousands, and instantiation pays for each). And before wazero decodes a
// module, its counts are checked against the bytes that follow them and
// the limits browsers set, since wazero allocates for a count before it
// reads what is counted.
//
// Guest code runs in the node's own process, on one of its Ps, and
// wazero's compiled code yields to Go's scheduler only at the checks it
// makes in loops and calls: calls as many as the Ps leave the node's own
// goroutines waiting behind them. So at most Config.MaxRunning calls run
// guest code at once (by default one fewer than GOMAXPROCS, at least 1):
// an invocation, a reuse-mode _initialize, a trial instantiation's start
// section. Calls past that wait in order, each until its deadline (then
// Sandbox.Timedout, the module never having seen it); a freed slot goes
// to the function with the fewest calls running, and no function holds
// more than MaxRunning−1 slots, so one function's looping calls leave the
// others a slot (see slots). A call that runs past 10 ms goes on at a
// lower CPU priority than the node's (its thread's nice 10), yielding the
// CPU to the node's own threads.
//
// # Reuse mode
//
// A Go guest's fresh instance costs 2–3 ms, mostly its runtime starting.
// With Spec.Reuse, Start instantiates the module once and every Invoke
// calls into that module instance, so what one invocation leaves in
// memory the next one sees. The module is a WASI reactor serving this ABI
// (numbers are i32 unless said):
//
//   - it exports its memory as "memory", and may export _initialize,
//     which Start runs once (for Go: the runtime and package init);
//   - wisp_alloc(size) -> ptr returns room for an event of size bytes,
//     where the host then writes it;
//   - wisp_handle(ptr, len) -> i64 runs one invocation on the event at
//     ptr and returns where the answer is, ptr<<32 | len. Bit 31 set
//     (len | 1<<31) makes the answer a function error: Lambda's error
//     document {"errorMessage", "errorType", "stackTrace"}, or any other
//     bytes, taken as the errorMessage; the errorType defaults to
//     Unhandled. The guest keeps the answer's bytes until its next call
//     (the host copies them). An empty answer is the response null.
//
// A Go 1.24+ guest exports both with //go:wasmexport and is built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared; see
// examples/hello-wasm-go-reuse. No guest code runs between calls.
//
// What the guest writes on stdout or stderr during a call goes to the
// logs tagged with the request id (during _initialize, with none). Stdin
// is empty, and the environment is Start's: no _X_AMZN_TRACE_ID. The
// memory limit holds over the module instance's life, and MaxMemoryMB is
// its peak. The endings are fresh mode's, but one that is a failure of
// the guest's code ends the module instance and with it the Instance
// (Reusable false, Done closed), as a crashed process would: an exit, a
// trap, running out of memory, the deadline. A Go guest that panics
// aborts with a trap, reported as fresh mode reports its exit: as
// Runtime.ExitError with the panic line (and the wasm stack). A guest
// that breaks the ABI, giving room or an answer outside its memory,
// traps: Runtime.WasmTrap. A function error answered with bit 31, or an
// answer over runtime.MaxResponseBytes, leaves it serving.
//
// Start refuses a module that does not export wisp_alloc and wisp_handle
// with Runtime.InvalidEntrypoint, and an _initialize that fails or runs
// past ctx or 10 s with Runtime.InitError (Runtime.OutOfMemory if it ran
// out of memory). InitDuration counts the instantiation and _initialize.
// Without reuse, a module with no _start is refused.
package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wisp-dev/wisp/internal/arn"
	"github.com/wisp-dev/wisp/internal/runtime"
)

// ErrTypeTrap is an invocation whose module trapped.
const ErrTypeTrap = "Runtime.WasmTrap"

// taskRoot is where a module sees its code.
const taskRoot = "/var/task"

// loadSlot is the slots' name for the trial instantiations of loads: not
// a function's name, which cannot have parentheses.
const loadSlot = "(load)"

// maxIdleModules is how many compiled modules no instance uses are kept in
// memory, so a function scaled to zero starts again without reading the
// compilation cache. The least recently used go first.
const maxIdleModules = 32

// Config configures a Driver. Only CacheDir is required.
type Config struct {
	// CacheDir holds the compilation cache, which survives restarts. It
	// is created if missing; required.
	CacheDir string
	// Region is AWS_REGION/AWS_DEFAULT_REGION given to functions; default
	// "us-east-1".
	Region string
	// MaxRunning bounds the wasm calls running at once, in the node's
	// process; default DefaultMaxRunning(), which leaves the node a P.
	// Calls past it wait, fairly between functions (see slots).
	MaxRunning int
	// Logger defaults to discard.
	Logger *slog.Logger
}

// Driver starts wasm instances. It is safe for concurrent use.
type Driver struct {
	cfg   Config
	log   *slog.Logger
	cache wazero.CompilationCache
	rt    wazero.Runtime
	// host is what the host module exports, by name: the WASI functions.
	host map[string]api.FunctionDefinition

	// slots bounds the guest code running at once.
	slots *slots

	compiles atomic.Int64
	// cacheMu guards cached: the names of the compilation cache's entries
	// seen so far; a compilation that adds one was a real one.
	cacheMu sync.Mutex
	cached  map[string]bool

	mu      sync.Mutex
	modules map[moduleKey]*module // guarded by mu
	closed  bool                  // guarded by mu
	loads   sync.WaitGroup        // compilations under way
}

// moduleKey names a module: its code dir and the handler in it.
type moduleKey struct{ codeDir, handler string }

// module is one compiled module and what Start learnt of it. Its fields
// other than lastPeak, refs, loaded and idleSince are set before ready is
// closed.
type module struct {
	key      moduleKey
	ready    chan struct{}
	compiled wazero.CompiledModule
	root     *os.Root    // the code dir, for the guest's /var/task
	minBytes uint64      // the memory the module asks for at instantiation
	entry    entryPoints // how it can be run: fresh, with reuse, or both
	initErr  error       // an *runtime.InitError, or the driver's own error
	// lastPeak is the memory the last invocation reached: the next one
	// reserves that much at once rather than growing into it.
	lastPeak atomic.Uint64

	refs      int       // guarded by Driver.mu: instances and waiting Starts
	loaded    bool      // guarded by Driver.mu: ready is closed
	idleSince time.Time // guarded by Driver.mu: when refs last fell to 0
}

// New returns a driver with its compilation cache in cfg.CacheDir.
func New(cfg Config) (*Driver, error) {
	if cfg.CacheDir == "" {
		return nil, errors.New("wasm: Config.CacheDir is required")
	}
	if cfg.Region == "" {
		cfg.Region = arn.DefaultRegion
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.MaxRunning < 0:
		return nil, fmt.Errorf("wasm: Config.MaxRunning %d: must be 0 (the default) or more", cfg.MaxRunning)
	case cfg.MaxRunning == 0:
		cfg.MaxRunning = DefaultMaxRunning()
	}
	cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("wasm: compilation cache: %w", err)
	}
	ctx := context.Background()
	// The memory limit is each instance's, set through its allocator: one
	// runtime, and one compiled module per code, serve every memory size.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(true))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, errors.Join(fmt.Errorf("wasm: WASI host module: %w", err), rt.Close(ctx), cache.Close(ctx))
	}
	d := &Driver{
		cfg:     cfg,
		log:     cfg.Logger,
		cache:   cache,
		rt:      rt,
		host:    rt.Module(wasiModule).ExportedFunctionDefinitions(),
		slots:   newSlots(cfg.MaxRunning),
		cached:  make(map[string]bool),
		modules: make(map[moduleKey]*module),
	}
	for _, name := range d.cacheEntries() {
		d.cached[name] = true
	}
	return d, nil
}

// Compiles counts the compilations this driver made that did not find the
// module in the compilation cache, on disk or in memory. It counts the
// entries they added to the cache dir, so a compilation another process
// made in the same dir meanwhile counts too.
func (d *Driver) Compiles() int64 { return d.compiles.Load() }

// Start returns an instance of the module spec.Handler names in
// spec.CodeDir, compiling it if no instance of it is running, and with
// spec.Reuse instantiates it, running its _initialize. ctx bounds the wait
// for the compilation, which goes on for the next Start if ctx ends, and
// _initialize.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (runtime.Instance, error) {
	start := time.Now()
	if spec.CodeDir == "" {
		return nil, errors.New("wasm: Spec.CodeDir is required")
	}
	codeDir, err := filepath.Abs(spec.CodeDir)
	if err != nil {
		return nil, fmt.Errorf("wasm: code dir: %w", err)
	}
	switch {
	case spec.Handler == "":
		return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, "the function has no handler: it must name the .wasm file, e.g. main.wasm")
	case !filepath.IsLocal(spec.Handler):
		return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, fmt.Sprintf("handler %q is not a path inside the code", spec.Handler))
	}
	m, err := d.acquire(ctx, moduleKey{codeDir: codeDir, handler: filepath.Clean(spec.Handler)})
	if err != nil {
		return nil, err
	}
	limit := memoryLimit(spec.MemoryMB)
	if m.minBytes > limit {
		d.release(m)
		return nil, runtime.NewInitError(runtime.ErrTypeOutOfMemory, fmt.Sprintf(
			"the module needs %d MB of memory to start, over the function's %d MB", mb(m.minBytes), limit>>20))
	}
	switch {
	case spec.Reuse && !m.entry.reactor:
		d.release(m)
		return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+
			": reuse needs a module exporting wisp_alloc and wisp_handle (a reactor: for Go, "+
			"//go:wasmexport functions built with -buildmode=c-shared)")
	case !spec.Reuse && !m.entry.command:
		d.release(m)
		msg := errNoEntryPoint.Error()
		if m.entry.reactor {
			msg = "it exports no _start: it is a reactor exporting wisp_handle, which runs with reuse on"
		}
		return nil, runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+": "+msg)
	}
	i := &instance{
		d:      d,
		m:      m,
		spec:   spec,
		config: d.moduleConfig(spec, m, time.Now()),
		limit:  limit,
		done:   make(chan struct{}),
	}
	if spec.Reuse {
		if err := i.startWarm(ctx); err != nil {
			d.release(m)
			return nil, err
		}
	}
	i.initDur = time.Since(start)
	d.log.Debug("wasm: instance ready", "function", spec.Function, "version", spec.Version,
		"instance", spec.InstanceID, "reuse", spec.Reuse, "init", i.initDur)
	return i, nil
}

// acquire returns the compiled module for key, compiling it if no one has,
// and holds it for the caller until release. Concurrent callers for one
// key wait for one compilation.
func (d *Driver) acquire(ctx context.Context, key moduleKey) (*module, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("wasm: driver closed")
	}
	m, ok := d.modules[key]
	if !ok {
		m = &module{key: key, ready: make(chan struct{})}
		d.modules[key] = m
		d.loads.Add(1)
		// Detached from this caller: the others waiting for it must not
		// fail because the first of them went away.
		go d.load(context.WithoutCancel(ctx), m)
	}
	m.refs++ // so it is not evicted while we wait
	d.mu.Unlock()

	select {
	case <-m.ready:
	case <-ctx.Done():
		d.release(m)
		return nil, fmt.Errorf("wasm: waiting for the module %s to compile: %w", key.handler, ctx.Err())
	}
	if m.initErr != nil {
		d.release(m)
		return nil, m.initErr
	}
	return m, nil
}

// release gives back a module acquire returned.
func (d *Driver) release(m *module) {
	d.mu.Lock()
	m.refs--
	if m.refs == 0 {
		m.idleSince = time.Now()
	}
	evicted := d.evictLocked()
	d.mu.Unlock()
	d.closeModules(evicted)
}

// evictLocked takes the least recently used idle modules out of the map
// while there are more than maxIdleModules, and returns them for closing.
func (d *Driver) evictLocked() []*module {
	var idle []*module
	for _, m := range d.modules {
		if m.refs == 0 && m.loaded {
			idle = append(idle, m)
		}
	}
	if len(idle) <= maxIdleModules {
		return nil
	}
	slices.SortFunc(idle, func(a, b *module) int { return a.idleSince.Compare(b.idleSince) })
	idle = idle[:len(idle)-maxIdleModules]
	for _, m := range idle {
		delete(d.modules, m.key)
	}
	return idle
}

// closeModules frees modules no instance uses any more.
func (d *Driver) closeModules(ms []*module) {
	for _, m := range ms {
		if m.compiled != nil {
			if err := m.compiled.Close(context.Background()); err != nil {
				d.log.Debug("wasm: closing a compiled module", "handler", m.key.handler, "err", err)
			}
		}
		if m.root != nil {
			if err := m.root.Close(); err != nil {
				d.log.Debug("wasm: closing a code dir", "dir", m.key.codeDir, "err", err)
			}
		}
	}
}

// load reads, compiles and checks a module, then closes its ready. A
// failed load is forgotten, so the next Start tries again.
func (d *Driver) load(ctx context.Context, m *module) {
	defer d.loads.Done()
	start := time.Now()
	m.initErr = d.loadModuleSafely(ctx, m)
	d.mu.Lock()
	m.loaded = true
	if m.refs == 0 {
		m.idleSince = time.Now()
	}
	var drop []*module
	if m.initErr != nil || d.closed {
		if d.modules[m.key] == m {
			delete(d.modules, m.key)
		}
		if m.initErr == nil {
			m.initErr = errors.New("wasm: driver closed")
		}
		drop = []*module{m}
	}
	d.mu.Unlock()
	close(m.ready)
	d.closeModules(drop)
	d.log.Debug("wasm: module loaded", "dir", m.key.codeDir, "handler", m.key.handler,
		"took", time.Since(start), "err", m.initErr)
}

// loadModuleSafely loads a module, turning a panic of wazero's into the
// module's init error: the module is anyone's bytes, and a goroutine's
// panic would end the node.
func (d *Driver) loadModuleSafely(ctx context.Context, m *module) (err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("wasm: loading a module panicked", "dir", m.key.codeDir, "handler", m.key.handler,
				"panic", p, "stack", string(debug.Stack()))
			err = runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, fmt.Sprintf("%s: the module cannot be loaded: %v", m.key.handler, p))
		}
	}()
	return d.loadModule(ctx, m)
}

func (d *Driver) loadModule(ctx context.Context, m *module) error {
	root, err := os.OpenRoot(m.key.codeDir)
	if err != nil {
		return fmt.Errorf("wasm: code dir: %w", err)
	}
	m.root = root
	bin, err := root.ReadFile(m.key.handler)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, fmt.Sprintf("the code has no %s (the handler names the .wasm file)", m.key.handler))
	case err != nil:
		return runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+": "+runtime.UnwrapPath(err).Error())
	}
	if err := checkBinary(bin); err != nil {
		return runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+": "+err.Error())
	}
	merged, ok := mergeData(bin, mergeGap)
	m.compiled, err = d.compile(ctx, merged)
	if err != nil && ok {
		// Should merging ever make an invalid module, the module as it
		// came is the one to judge.
		m.compiled, err = d.compile(ctx, bin)
	}
	if err != nil {
		return runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+": invalid WebAssembly module: "+err.Error())
	}
	if m.entry, err = checkModule(m.compiled, d.host); err != nil {
		return runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+": "+err.Error())
	}
	// The trial runs the module's start section, if any: guest code, in a
	// slot as an invocation is.
	tctx, cancel := context.WithTimeout(ctx, trialTimeout)
	defer cancel()
	var minBytes uint64
	if serr := d.slots.do(tctx, loadSlot, func() { minBytes, err = trialInstance(tctx, d.rt, m.compiled) }); serr != nil {
		return fmt.Errorf("wasm: loading %s: %w", m.key.handler, serr)
	}
	if err != nil {
		return runtime.NewInitError(runtime.ErrTypeInvalidEntrypoint, m.key.handler+": "+err.Error())
	}
	m.minBytes = minBytes
	return nil
}

// compile compiles a module, counting it if it was not found in the
// compilation cache.
func (d *Driver) compile(ctx context.Context, bin []byte) (wazero.CompiledModule, error) {
	c, err := d.rt.CompileModule(experimental.WithCompilationWorkers(ctx, goruntime.GOMAXPROCS(0)), bin)
	if err != nil {
		return nil, err
	}
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	for _, name := range d.cacheEntries() {
		if !d.cached[name] {
			d.cached[name] = true
			d.compiles.Add(1)
		}
	}
	return c, nil
}

// cacheEntries lists the compilation cache's entries: wazero keeps them in
// a dir per wazero version and platform.
func (d *Driver) cacheEntries() []string {
	dirs, err := os.ReadDir(d.cfg.CacheDir)
	if err != nil {
		d.log.Debug("wasm: listing the compilation cache", "err", err)
		return nil
	}
	var names []string
	for _, dir := range dirs {
		if !dir.IsDir() || !strings.HasPrefix(dir.Name(), "wazero-") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(d.cfg.CacheDir, dir.Name()))
		if err != nil {
			d.log.Debug("wasm: listing the compilation cache", "err", err)
			continue
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), ".tmp") {
				names = append(names, dir.Name()+"/"+f.Name())
			}
		}
	}
	return names
}

// Close frees every compiled module and the runtime. Stop the instances
// first: an invocation still running is ended.
func (d *Driver) Close(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()

	loaded := make(chan struct{})
	go func() {
		d.loads.Wait()
		close(loaded)
	}()
	var err error
	select {
	case <-loaded:
	case <-ctx.Done():
		// The compilations end on their own and find the driver closed.
		err = fmt.Errorf("wasm: close: waiting for compilations: %w", ctx.Err())
	}

	d.mu.Lock()
	ms := slices.Collect(maps.Values(d.modules))
	clear(d.modules)
	d.mu.Unlock()
	for _, m := range ms {
		if m.root != nil {
			err = errors.Join(err, m.root.Close())
		}
	}
	// Closing the runtime closes its compiled modules.
	return errors.Join(err, d.rt.Close(ctx), d.cache.Close(ctx))
}

// moduleConfig returns what every instantiation of an instance shares:
// its arguments, environment, files, clocks and randomness.
func (d *Driver) moduleConfig(spec runtime.Spec, m *module, now time.Time) wazero.ModuleConfig {
	c := wazero.NewModuleConfig().
		WithName(""). // anonymous, so instantiations do not clash
		WithArgs(m.key.handler).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader).
		WithFSConfig(wazero.NewFSConfig().WithFSMount(m.root.FS(), taskRoot))
	for _, kv := range d.env(spec, m.key.handler, now) {
		c = c.WithEnv(kv[0], kv[1])
	}
	return c
}

// env returns the instance's environment, in order (a later value of a
// name replaces an earlier one): the working directory, the function's
// variables, which cannot set the AWS_ and LAMBDA_ ones, and the Lambda
// variables.
func (d *Driver) env(spec runtime.Spec, handler string, now time.Time) [][2]string {
	own, dropped := runtime.FunctionEnv(spec.Env)
	if len(dropped) > 0 {
		d.log.Debug("wasm: function variables ignored", "function", spec.Function, "names", dropped)
	}
	spec.Runtime = "wasm"
	all := append(append(append([]string{"PWD=" + taskRoot}, own...),
		"LAMBDA_TASK_ROOT="+taskRoot, "_HANDLER="+handler), runtime.LambdaEnv(spec, d.cfg.Region, now)...)
	env := make([][2]string, 0, len(all))
	for _, kv := range all {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, [2]string{k, v})
	}
	return env
}
