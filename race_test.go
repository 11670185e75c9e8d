//go:build race

package main

// raceEnabled tells tests that the race detector slows the exporter
// binary down several times.
const raceEnabled = true
