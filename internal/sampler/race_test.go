//go:build race

package sampler

// raceEnabled: the race detector makes sync.Pool drop items at random.
const raceEnabled = true
