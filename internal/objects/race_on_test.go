//go:build race

package objects

// raceEnabled says the race detector runs: its instrumented code holds
// more of each chunk in flight (56 MiB seen for a 256 MiB get, 41 without).
const raceEnabled = true

// memTestSize is what the memory tests move: less under the race
// detector, whose instrumented copies take most of their time.
const memTestSize = 128 << 20
