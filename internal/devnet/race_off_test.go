//go:build !race

package devnet

// raceEnabled: see race_on_test.go.
const raceEnabled = false

// raceBlocks: see race_on_test.go.
const raceBlocks = 1
