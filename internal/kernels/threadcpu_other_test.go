//go:build !linux

package kernels

import "time"

// threadCPU is 0 where RUSAGE_THREAD is not available.
func threadCPU() time.Duration { return 0 }
