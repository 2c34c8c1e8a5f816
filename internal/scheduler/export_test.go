package scheduler

// Overdrawn is the number of steps after which a sequence held more
// key/value cache than s counted for it.
func Overdrawn(s *Scheduler) uint64 { return s.overdrawn.Load() }
