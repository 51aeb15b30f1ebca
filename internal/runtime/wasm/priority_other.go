//go:build !linux

package wasm

// canLower is false where a thread's priority is not its own to set
// portably: guest code runs at the node's priority.
func canLower() bool { return false }

func runLowered(f func()) { f() }
