package inference_test

import (
	"errors"
	"fmt"

	"github.com/verdictnet/verdict/internal/inference"
	"github.com/verdictnet/verdict/internal/merkle"
)

// A model's system_fingerprint depends only on its id and the determinism
// spec: servers that agree on both answer bit for bit alike.
func ExampleFingerprint() {
	var id merkle.Hash // the zero model id, for the example
	fmt.Println(inference.Fingerprint(id, "verdict-det-1"))
	// Output: fp_3dcdb0b06c67e872
}

// Callers tell the failures of a generation apart with errors.Is, however
// a backend wrapped them.
func ExampleErrBusy() {
	err := fmt.Errorf("worker 3: %w", inference.ErrBusy)
	fmt.Println(errors.Is(err, inference.ErrBusy), errors.Is(err, inference.ErrContextLength))
	// Output: true false
}
