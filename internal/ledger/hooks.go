package ledger

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/receipt"
)

// Receipts is the ReceiptVerifier of internal/receipt: it parses the
// canonical receipt, checks its fields and signature, and returns its id,
// worker and model.
type Receipts struct{}

// VerifyReceipt implements ReceiptVerifier.
func (Receipts) VerifyReceipt(b []byte) (ReceiptInfo, error) {
	r, err := receipt.Parse(b)
	if err != nil {
		return ReceiptInfo{}, err
	}
	if err := r.Verify(); err != nil {
		return ReceiptInfo{}, err
	}
	w, err := AddressOf(r.Worker)
	if err != nil {
		return ReceiptInfo{}, fmt.Errorf("receipt worker: %w", err)
	}
	return ReceiptInfo{ID: r.ID(), Worker: w, ModelID: Hash(r.Model)}, nil
}
