// Command wisp is the Wisp binary: the node (wisp server) and its CLI.
package main

import (
	"os"

	"github.com/wisp-dev/wisp/internal/cli"
)

func main() {
	if err := cli.Execute(cli.NewRootCmd()); err != nil {
		os.Exit(1)
	}
}
