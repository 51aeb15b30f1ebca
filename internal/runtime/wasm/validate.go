package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

const wasiModule = "wasi_snapshot_preview1"

// buildHint says how to get a module this runtime runs.
const buildHint = "build for WASI preview 1, e.g. GOOS=wasip1 GOARCH=wasm, or Rust's --target wasm32-wasip1"

// Validate checks a module the way Start needs it, so bad code can be
// refused when it is deployed: it must be a valid WebAssembly core module,
// a WASI preview 1 command (exporting _start) or a reactor serving the
// reuse ABI (exporting wisp_alloc and wisp_handle), import nothing but the
// WASI preview 1 functions the host provides, with their signatures, and
// instantiate. Which of the two a function needs depends on its reuse
// setting, which Start checks. Validate compiles with wazero's
// interpreter, which is much cheaper than compiling to machine code and
// checks the same.
func Validate(ctx context.Context, module []byte) (err error) {
	if err := checkBinary(module); err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	// The module is anyone's bytes: should wazero panic on them, that is
	// a refusal, not a crash of the node.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("wasm: the module cannot be decoded: %v", p)
		}
	}()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().
		WithDebugInfoEnabled(false).
		WithCloseOnContextDone(true))
	defer func() { err = errors.Join(err, r.Close(ctx)) }()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		return fmt.Errorf("wasm: WASI host module: %w", err)
	}
	compiled, err := r.CompileModule(ctx, module)
	if err != nil {
		return fmt.Errorf("wasm: invalid WebAssembly module: %w", err)
	}
	entry, err := checkModule(compiled, r.Module(wasiModule).ExportedFunctionDefinitions())
	if err == nil && !entry.command && !entry.reactor {
		err = errNoEntryPoint
	}
	if err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	if _, err := trialInstance(ctx, r, compiled); err != nil {
		return fmt.Errorf("wasm: %w", err)
	}
	return nil
}

// trialTimeout bounds a trial instantiation, which runs the module's
// start function, if it has one (not _start: a WebAssembly start section).
const trialTimeout = 10 * time.Second

// trialInstance instantiates a module without running _start, which
// links its imports and sizes its memory: a module that cannot be
// instantiated fails its deploy or its Start, not each invocation. It
// returns the memory the module starts with.
func trialInstance(ctx context.Context, r wazero.Runtime, compiled wazero.CompiledModule) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, trialTimeout)
	defer cancel()
	alloc := allocator{limit: maxMemory}
	mod, err := r.InstantiateModule(experimental.WithMemoryAllocator(ctx, &alloc), compiled,
		wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return 0, fmt.Errorf("cannot instantiate: %w", err)
	}
	// Closing an instance that ran nothing frees memory; it cannot fail
	// in a way that matters.
	if err := mod.Close(ctx); err != nil {
		return 0, fmt.Errorf("closing a trial instance: %w", err)
	}
	return alloc.peak, nil
}

// checkBinary refuses what is not a WebAssembly core module, before
// wazero says so less clearly, and a module whose counts are out of
// bounds, before wazero allocates for them.
func checkBinary(b []byte) error {
	if err := checkHeader(b); err != nil {
		return err
	}
	if err := checkLimits(b); err != nil {
		return fmt.Errorf("invalid WebAssembly module: %w", err)
	}
	return nil
}

// checkHeader checks the magic number and the version.
func checkHeader(b []byte) error {
	if len(b) < 8 || !bytes.Equal(b[:4], []byte("\x00asm")) {
		return errors.New("not a WebAssembly module (it does not begin with \\0asm)")
	}
	switch v := binary.LittleEndian.Uint32(b[4:8]); {
	case v == 1:
		return nil
	case v>>16 == 1: // the layer of the component model
		return errors.New("a WebAssembly component (WASI preview 2), not a core module: " + buildHint)
	default:
		return fmt.Errorf("unsupported WebAssembly binary version %d", v)
	}
}

// entryPoints says how a module can be run.
type entryPoints struct {
	command bool // it exports _start: a fresh instance per invocation
	reactor bool // it exports wisp_alloc and wisp_handle: reuse mode
}

// errNoEntryPoint is a module that is neither a command nor a reactor.
var errNoEntryPoint = errors.New("it exports no _start: a WASI command is needed, " +
	"or for reuse mode a reactor exporting wisp_alloc and wisp_handle")

// reuseExports are the functions of the reuse ABI, with their
// signatures; _initialize is optional.
var reuseExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{"_initialize", nil, nil},
	{"wisp_alloc", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"wisp_handle", []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
}

// checkModule checks a compiled module's imports and exports against what
// an invocation needs and host provides, and says how it can be run.
// That it can be run at all, and in the mode a function asks for, is for
// the caller to check.
func checkModule(c wazero.CompiledModule, host map[string]api.FunctionDefinition) (entryPoints, error) {
	var foreign, unknown, mismatched []string
	preview0 := false
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		switch mod {
		case wasiModule:
			h, ok := host[name]
			switch {
			case !ok:
				unknown = append(unknown, name)
			case !slices.Equal(h.ParamTypes(), f.ParamTypes()) || !slices.Equal(h.ResultTypes(), f.ResultTypes()):
				mismatched = append(mismatched, fmt.Sprintf("%s.%s as %s, but it is %s", mod, name, signature(f), signature(h)))
			}
		case "wasi_unstable":
			preview0 = true
		default:
			foreign = append(foreign, mod+"."+name)
		}
	}
	var errs []error
	switch {
	case preview0:
		errs = append(errs, errors.New("it imports wasi_unstable (WASI preview 0), which is not supported: "+buildHint))
	case len(foreign) > 0:
		errs = append(errs, fmt.Errorf("it imports %s: only WASI preview 1 (%s) is provided: %s", list(foreign), wasiModule, buildHint))
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("it imports %s from %s, which the host does not provide", list(unknown), wasiModule))
	}
	if len(mismatched) > 0 {
		errs = append(errs, fmt.Errorf("it imports %s", list(mismatched)))
	}
	for _, m := range c.ImportedMemories() {
		mod, name, _ := m.Import()
		errs = append(errs, fmt.Errorf("it imports a memory (%s.%s): it must define its own", mod, name))
	}

	var entry entryPoints
	exports := c.ExportedFunctions()
	if start, ok := exports["_start"]; ok {
		if len(start.ParamTypes()) > 0 || len(start.ResultTypes()) > 0 {
			errs = append(errs, fmt.Errorf("its _start is %s, not func()", signature(start)))
		}
		entry.command = true
	}
	for _, want := range reuseExports {
		f, ok := exports[want.name]
		if ok && (!slices.Equal(f.ParamTypes(), want.params) || !slices.Equal(f.ResultTypes(), want.results)) {
			errs = append(errs, fmt.Errorf("its %s is %s, not %s", want.name, signature(f), signatureOf(want.params, want.results)))
		}
	}
	_, alloc := exports["wisp_alloc"]
	_, handle := exports["wisp_handle"]
	if alloc && handle {
		if _, ok := c.ExportedMemories()["memory"]; !ok {
			errs = append(errs, errors.New("it exports wisp_handle but no memory named memory, where events and answers go"))
		}
		entry.reactor = true
	}
	return entry, errors.Join(errs...)
}

// list lists names for a message, the first few of them.
func list(names []string) string {
	const most = 5
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
}

// signature writes a function's type, e.g. func(i32, i32) i32.
func signature(f api.FunctionDefinition) string {
	return signatureOf(f.ParamTypes(), f.ResultTypes())
}

func signatureOf(params, results []api.ValueType) string {
	types := func(ts []api.ValueType) string {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = api.ValueTypeName(t)
		}
		return strings.Join(names, ", ")
	}
	s := "func(" + types(params) + ")"
	switch len(results) {
	case 0:
	case 1:
		s += " " + types(results)
	default:
		s += " (" + types(results) + ")"
	}
	return s
}
