//go:build amd64 && !purego

package sha256x16

//go:generate go run asmgen.go

import "golang.org/x/sys/cpu"

// blocks16 runs the compression function on n consecutive 64-byte blocks
// of 16 messages: lane j reads ptrs[j], ptrs[j]+64, ...; state[w][j] is
// word w of lane j's chaining value. It needs AVX512F and AVX512BW.
//
//go:noescape
func blocks16(state *[8][16]uint32, ptrs *[16]*byte, n int)

// hasKernel reports whether blocks16 can run here (x/sys/cpu reports
// AVX-512 only where the OS also saves the zmm state).
var hasKernel = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW

// prefetch16 asks for the first `lines` 64-byte lines at each of the 16
// pointers to be brought into the cache (PREFETCHT0): the segments sum16
// copies into its scratch blocks, read one lane at a time, would
// otherwise wait on memory one lane after another.
//
//go:noescape
func prefetch16(ptrs *[16]*byte, lines int)
