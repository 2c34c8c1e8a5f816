//go:build race

package devnet

// raceEnabled: the race detector slows the worker several times over, so
// timing margins measured under it say nothing about a production build.
const raceEnabled = true
