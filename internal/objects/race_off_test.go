//go:build !race

package objects

// raceEnabled says the race detector runs.
const raceEnabled = false

// memTestSize is what the memory tests move.
const memTestSize = 256 << 20
