package kernels

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time (user and system) of the calling OS thread
// (getrusage RUSAGE_THREAD).
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
