package worker_test

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/worker"
)

// The expected value was computed independently with Python's hashlib:
// "fp_" + sha256(b"verdict-det/1" + b"\x00" + bytes(32)).hexdigest()[:16].
func ExampleFingerprint() {
	var id merkle.Hash // the all-zero model id
	fmt.Println(worker.Fingerprint(id, "verdict-det/1"))
	// Output: fp_b674cc20220c3d84
}
