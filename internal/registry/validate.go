package registry

import (
	"fmt"
	"regexp"
	"strings"
)

// Limits on a function's config, as DESIGN.md and Lambda set them.
const (
	MinMemoryMB       = 128
	MaxMemoryMB       = 10240
	DefaultMemoryMB   = 128
	DefaultTimeout    = 3   // seconds
	MaxTimeout        = 900 // seconds
	MaxEnvBytes       = 4096
	MaxDescription    = 256
	MaxKeepWarm       = 7 * 24 * 3600 // seconds
	MaxConcurrency    = 10000
	MaxMinInstances   = 100
	URLAuthToken      = "token"
	URLAuthNone       = "none"
	NetworkNone       = "none"
	NetworkHost       = "host"
	defaultBinHandler = "bootstrap"
)

// Runtimes are the runtime names a function may have.
var runtimes = map[string]bool{"provided": true, "go": true, "nodejs": true, "python": true, "wasm": true}

var (
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	digitsRE = regexp.MustCompile(`^[0-9]+$`)
)

// ValidationError is a refused input; the API answers 400.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// ValidName checks a function or alias name.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return invalid("%s name %q must match [a-z][a-z0-9-]{0,62}", kind, name)
	}
	return nil
}

// apply sets cfg's fields on f, filling defaults for a new function, and
// checks the result.
func apply(f *Function, cfg Config, create bool) error {
	if create {
		if err := ValidName("function", cfg.Name); err != nil {
			return err
		}
		f.Name = cfg.Name
		f.MemoryMB, f.Timeout, f.URLAuth, f.Network = DefaultMemoryMB, DefaultTimeout, URLAuthToken, NetworkNone
		if cfg.Runtime == nil {
			return invalid("runtime is required (one of provided, go, nodejs, python, wasm)")
		}
	} else if cfg.Name != "" && cfg.Name != f.Name {
		return invalid("a function cannot be renamed (%q to %q)", f.Name, cfg.Name)
	}
	if cfg.Runtime != nil {
		f.Runtime = *cfg.Runtime
	}
	if cfg.Handler != nil {
		f.Handler = *cfg.Handler
	}
	if cfg.MemoryMB != nil {
		f.MemoryMB = *cfg.MemoryMB
	}
	if cfg.Timeout != nil {
		f.Timeout = *cfg.Timeout
	}
	if cfg.Env != nil {
		f.Env = cfg.Env
	}
	if cfg.Concurrency != nil {
		c := *cfg.Concurrency
		f.Concurrency = &c
	}
	if cfg.ClearConcurrency {
		f.Concurrency = nil
	}
	if cfg.MinInstances != nil {
		f.MinInstances = *cfg.MinInstances
	}
	if cfg.KeepWarm != nil {
		f.KeepWarm = *cfg.KeepWarm
	}
	if cfg.Description != nil {
		f.Description = *cfg.Description
	}
	if cfg.URLAuth != nil {
		f.URLAuth = *cfg.URLAuth
	}
	if cfg.Network != nil {
		f.Network = *cfg.Network
	}
	if cfg.Reuse != nil {
		f.Reuse = *cfg.Reuse
	}
	if f.Handler == "" && (f.Runtime == "provided" || f.Runtime == "go") {
		f.Handler = defaultBinHandler
	}
	return check(f)
}

func check(f *Function) error {
	if !runtimes[f.Runtime] {
		return invalid("unknown runtime %q (one of provided, go, nodejs, python, wasm)", f.Runtime)
	}
	if err := checkHandler(f.Runtime, f.Handler); err != nil {
		return err
	}
	if f.MemoryMB < MinMemoryMB || f.MemoryMB > MaxMemoryMB {
		return invalid("memory_mb %d is out of range (%d to %d)", f.MemoryMB, MinMemoryMB, MaxMemoryMB)
	}
	if f.Timeout < 1 || f.Timeout > MaxTimeout {
		return invalid("timeout %d is out of range (1 to %d seconds)", f.Timeout, MaxTimeout)
	}
	if err := checkEnv(f.Env); err != nil {
		return err
	}
	if f.Concurrency != nil && (*f.Concurrency < 0 || *f.Concurrency > MaxConcurrency) {
		return invalid("concurrency %d is out of range (0 to %d)", *f.Concurrency, MaxConcurrency)
	}
	if f.KeepWarm < 0 || f.KeepWarm > MaxKeepWarm {
		return invalid("keep_warm %d is out of range (0 for the node's default, up to %d seconds)", f.KeepWarm, MaxKeepWarm)
	}
	if f.MinInstances < 0 || f.MinInstances > MaxMinInstances {
		return invalid("min_instances %d is out of range (0 to %d)", f.MinInstances, MaxMinInstances)
	}
	if f.Concurrency != nil && f.MinInstances > *f.Concurrency {
		return invalid("min_instances %d is over the reserved concurrency %d", f.MinInstances, *f.Concurrency)
	}
	if len(f.Description) > MaxDescription {
		return invalid("description is longer than %d characters", MaxDescription)
	}
	if f.Reuse && f.Runtime != "wasm" {
		return invalid("reuse is for runtime wasm only")
	}
	if f.Network == "" {
		f.Network = NetworkNone // records made before the field
	}
	if f.Network != NetworkNone && f.Network != NetworkHost {
		return invalid("network %q must be %q or %q", f.Network, NetworkNone, NetworkHost)
	}
	if f.URLAuth != URLAuthToken && f.URLAuth != URLAuthNone {
		return invalid("url_auth %q must be %q or %q", f.URLAuth, URLAuthToken, URLAuthNone)
	}
	return nil
}

func checkHandler(runtime, h string) error {
	switch runtime {
	case "wasm":
		if !strings.HasSuffix(h, ".wasm") {
			return invalid("handler %q must name the module's .wasm file for runtime wasm", h)
		}
	case "nodejs", "python":
		// file.export / module.function, the module part a path in the code.
		i := strings.LastIndex(h, ".")
		if i <= 0 || i == len(h)-1 {
			return invalid("handler %q must be module.function for runtime %s", h, runtime)
		}
	}
	if len(h) > 128 || strings.ContainsAny(h, "\x00\n") || strings.Contains(h, "..") || strings.HasPrefix(h, "/") {
		return invalid("handler %q is not a valid handler", h)
	}
	return nil
}

func checkEnv(env map[string]string) error {
	size := 0
	for k, v := range env {
		if !envKeyRE.MatchString(k) {
			return invalid("env key %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if u := strings.ToUpper(k); strings.HasPrefix(u, "AWS_") || strings.HasPrefix(u, "WISP_") ||
			strings.HasPrefix(u, "LAMBDA_") || u == "_HANDLER" || u == "_X_AMZN_TRACE_ID" {
			return invalid("env key %q is reserved (AWS_, LAMBDA_, WISP_, _HANDLER and _X_AMZN_TRACE_ID belong to the platform)", k)
		}
		if strings.ContainsRune(v, 0) {
			return invalid("env value of %q holds a NUL byte", k)
		}
		size += len(k) + len(v)
	}
	if size > MaxEnvBytes {
		return invalid("env is %d bytes; at most %d", size, MaxEnvBytes)
	}
	return nil
}

// checkAlias validates an alias's name and weights (not whether its
// versions exist).
func checkAlias(a Alias) error {
	if err := ValidName("alias", a.Name); err != nil {
		return err
	}
	if digitsRE.MatchString(a.Name) {
		return invalid("alias name %q must not be all digits (it would read as a version)", a.Name)
	}
	if a.Version < 1 {
		return invalid("alias version must be a published version (1 or more)")
	}
	if a.AdditionalWeight < 0 || a.AdditionalWeight > 1 {
		return invalid("additional_weight %v must be between 0 and 1", a.AdditionalWeight)
	}
	if a.AdditionalVersion == 0 && a.AdditionalWeight != 0 {
		return invalid("additional_weight needs an additional_version")
	}
	if a.AdditionalVersion != 0 && a.AdditionalVersion == a.Version {
		return invalid("additional_version must differ from version")
	}
	if a.AdditionalVersion < 0 {
		return invalid("additional_version %d is not a version", a.AdditionalVersion)
	}
	if len(a.Description) > MaxDescription {
		return invalid("description is longer than %d characters", MaxDescription)
	}
	return nil
}
