//go:build !linux

package engine_test

import "time"

// processCPU is 0 where getrusage is not used.
func processCPU() time.Duration { return 0 }
