//go:build !race

package server_test

// raceEnabled says the race detector runs, whose shadow memory RSS counts.
const raceEnabled = false
