// Command flood-wasm is a hostile WebAssembly function (WASI preview 1) for
// the soak (go run ./bench -soak 60s): it writes 4 KiB lines to stderr as
// fast as it can until the node stops it at its timeout.
package main

import (
	"os"
	"strings"
)

func main() {
	line := strings.Repeat("w", 4095) + "\n"
	for {
		os.Stderr.WriteString(line) //nolint:errcheck // a flood does not care whether a line got through
	}
}
