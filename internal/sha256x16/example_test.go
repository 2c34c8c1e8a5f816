package sha256x16_test

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/sha256x16"
)

// Merkle leaf hashes SHA-256(0x00 ‖ key ‖ value) of four key/value pairs,
// each given as two parts.
func ExampleSum() {
	var parts [][]byte
	for i := range 4 {
		parts = append(parts, []byte{byte(i), 1, 2}, []byte{3, 4, 5, byte(i)})
	}
	out := make([][sha256x16.Size]byte, 4)
	sha256x16.Sum(out, []byte{0}, parts)
	for _, h := range out {
		fmt.Printf("%x\n", h[:8])
	}
	// Output:
	// 222f01f418bf1716
	// 19687d8897757405
	// a93dac67981abe1f
	// 90ac42c8b02165dd
}
