package audit

import (
	"context"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/receipt"
)

// Retrace re-runs a receipt's prompt and output on e as one prefill and
// returns the trace e computes, whether or not its roots are the receipt's.
// A challenger builds its side of a dispute from it: its tree's root is the
// commitment and its leaves answer the referee's queries. ctx is checked
// as Regenerate checks it.
func Retrace(ctx context.Context, e *engine.Engine, r *receipt.Receipt) (*Trace, error) {
	return regenerate(ctx, e, r)
}
