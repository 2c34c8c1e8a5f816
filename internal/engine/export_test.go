package engine

// SetPagePositions sets the positions of a full cache page of the
// sequences e makes from now on (tests: pages smaller than a block).
func SetPagePositions(e *Engine, n int) { e.page = n }
