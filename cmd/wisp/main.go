// Command wisp is the Wisp binary: the node (wisp server) and its CLI.
package main

import (
	"os"

	"github.com/wisp-dev/wisp/internal/cli"
	"github.com/wisp-dev/wisp/internal/sandbox"
)

func main() {
	// The node re-executes itself as the init of each function's sandbox.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitArg {
		os.Exit(sandbox.RunInit())
	}
	if err := cli.Execute(cli.NewRootCmd()); err != nil {
		os.Exit(1)
	}
}
