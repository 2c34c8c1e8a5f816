//go:build amd64 && !purego && linux

package kernels

import "syscall"

// amxPermit asks Linux for the tile registers (arch_prctl
// ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: a process must, before its
// first tile instruction, or that instruction faults). The permission is
// the process's, for every thread; asking again is harmless.
func amxPermit() bool {
	const (
		archReqXcompPerm  = 0x1023
		xfeatureXtiledata = 18
	)
	_, _, errno := syscall.RawSyscall(syscall.SYS_ARCH_PRCTL, archReqXcompPerm, xfeatureXtiledata, 0)
	return errno == 0
}
