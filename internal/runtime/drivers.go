package runtime

import (
	"context"
	"fmt"
)

// ByRuntime is a Driver that starts each instance with the driver of its
// runtime: a pool need not know which one it drives.
type ByRuntime map[string]Driver

// Start starts spec with its runtime's driver.
func (b ByRuntime) Start(ctx context.Context, spec Spec) (Instance, error) {
	d, ok := b[spec.Runtime]
	if !ok {
		return nil, fmt.Errorf("runtime: no driver for runtime %q on this node", spec.Runtime)
	}
	return d.Start(ctx, spec)
}
