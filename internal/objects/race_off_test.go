//go:build !race

package objects

// raceEnabled says the race detector runs.
const raceEnabled = false
