//go:build race

package devnet

// raceEnabled: the race detector slows the worker several times over, so
// timing margins measured under it say nothing about a production build.
const raceEnabled = true

// raceBlocks stretches the crash test's blocks under the race detector:
// the worker it slows several times over (and a CI machine running other
// packages' race tests beside it) then has twice the wall time a block
// that a production build has, and its deadlines are still checked in
// blocks, against the whole window.
const raceBlocks = 2
