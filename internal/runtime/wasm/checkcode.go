package wasm

import (
	"context"
	"fmt"

	"github.com/wisp-dev/wisp/internal/registry"
)

// maxModuleBytes bounds the module a deploy checks (the unpacked code is
// bounded at 250 MB anyway).
const maxModuleBytes = 100 << 20

// CheckCode refuses at deploy what this runtime could never run: a wasm
// function's handler must name a valid WASI preview 1 module in its code
// (see Validate). Code of any other runtime passes.
func CheckCode(ctx context.Context, runtime, handler string, code *registry.Staged) error {
	if runtime != "wasm" {
		return nil
	}
	module, err := code.ReadFile(handler, maxModuleBytes)
	if err != nil {
		return fmt.Errorf("the handler %q names no module in the code: %w", handler, err)
	}
	return Validate(ctx, module)
}
