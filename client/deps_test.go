package client_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The client and the wire types are a leaf: a program that talks to a node
// imports them and the standard library, nothing of the node (internal/)
// and no other module. go list names every package they import, however
// indirectly.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to list the dependencies with")
	}
	allowed := []string{"github.com/wisp-dev/wisp/apitype", "github.com/wisp-dev/wisp/client"}
	for _, pkg := range []string{"github.com/wisp-dev/wisp/client", "github.com/wisp-dev/wisp/apitype"} {
		out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !slices.Contains(allowed, dep) {
				t.Errorf("%s depends on %s: it may import only the standard library and %v", pkg, dep, allowed)
			}
		}
	}
}
