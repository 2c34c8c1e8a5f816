//go:build !race

package devnet

// raceEnabled: see race_on_test.go.
const raceEnabled = false
