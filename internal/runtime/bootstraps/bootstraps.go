// Package bootstraps owns the programs Wisp runs for the built-in nodejs and
// python runtimes: AWS Lambda Runtime API clients, written in the runtime's
// own language with its standard library only, that load the function's
// handler and serve its invocations as AWS's runtime interface clients do.
// They ship inside the wisp binary.
package bootstraps

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed node/bootstrap.js
var nodeBootstrap []byte

//go:embed python/bootstrap.py
var pythonBootstrap []byte

// ErrUnknownRuntime is returned for a runtime with no bootstrap here.
var ErrUnknownRuntime = errors.New("bootstraps: unknown runtime")

// Command writes the bootstrap of runtime ("nodejs" or "python") into dir, as
// bootstrap.cjs or bootstrap.py, and returns the argv that runs it with
// interpreter (such as "node" or "/usr/bin/python3"). The Node bootstrap is
// CommonJS, and the .cjs name keeps it so under any package.json that says
// "type": "module".
//
// The process is to be started with its working directory at the function's
// code and with the Runtime API environment set: AWS_LAMBDA_RUNTIME_API,
// _HANDLER, LAMBDA_TASK_ROOT, the AWS_LAMBDA_FUNCTION_* names and so on.
//
// The file is replaced atomically and only when its content differs, so
// instances starting at once may share dir.
func Command(runtime, interpreter, dir string) ([]string, error) {
	var name string
	var src []byte
	switch runtime {
	case "nodejs":
		name, src = "bootstrap.cjs", nodeBootstrap
	case "python":
		name, src = "bootstrap.py", pythonBootstrap
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownRuntime, runtime)
	}
	path := filepath.Join(dir, name)
	if err := writeIfChanged(path, src); err != nil {
		return nil, fmt.Errorf("bootstraps: write %s bootstrap: %w", runtime, err)
	}
	return []string{interpreter, path}, nil
}

// writeIfChanged makes path hold data, renaming a temporary file over it so
// that a process reading path never sees a partial write.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".bootstrap-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return errors.Join(err, rerr)
		}
		return err
	}
	return nil
}
