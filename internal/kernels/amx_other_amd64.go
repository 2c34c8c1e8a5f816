//go:build amd64 && !purego && !linux

package kernels

// amxPermit reports false: only Linux is asked for the tile registers.
func amxPermit() bool { return false }
