//go:build !amd64 || purego

package sha256x16

const hasKernel = false

func blocks16(state *[8][16]uint32, ptrs *[16]*byte, n int) {
	panic("sha256x16: no multi-buffer kernel on this platform")
}

func prefetch16(ptrs *[16]*byte, lines int) {}
