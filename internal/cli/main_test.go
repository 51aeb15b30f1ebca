package cli

import (
	"os"
	"testing"

	"github.com/wisp-dev/wisp/internal/sandbox"
)

// TestMain lets the nodes of these tests re-execute the test binary as
// their sandboxes' init.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	os.Exit(m.Run())
}
