//go:build race

package e2e

// raceEnabled tells tests that the race detector slows the exporter
// binary down several times.
const raceEnabled = true
