package ledger

import (
	"fmt"
	"strconv"

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
	at := func(steps uint64) Hash {
		c := *r
		c.Sampling.Steps = int(min(steps, 1<<31))
		return RequestHash(&c)
	}
	return ReceiptInfo{ID: r.ID(), Worker: w, ModelID: Hash(r.Model), Request: RequestHash(r),
		Tokens: uint64(len(r.Prompt) + len(r.Output)), Steps: uint64(r.Sampling.Steps), RequestAt: at}, nil
}

// RequestHash is the hash of what a requester asks for, which its escrow
// commits to (MsgOpenEscrow.Request): SHA-256 of "verdict/request/v1"
// followed by five parts, each as an 8-byte big-endian length and the
// bytes: the model id (32 bytes), the nonce, the sampling parameters as
// the ASCII text "temperature=T;top_k=K;top_p=P;seed=S;steps=N" (T and P
// as the receipt writes them: the shortest decimal that reads back as the
// same float32; K, S, N in decimal), the stop tokens and the prompt
// tokens (each token 3 bytes, little-endian, as in the receipt). The
// worker, output and commitments are not part of it.
func RequestHash(r *receipt.Receipt) Hash {
	s := r.Sampling
	sampling := fmt.Sprintf("temperature=%s;top_k=%d;top_p=%s;seed=%d;steps=%d",
		strconv.FormatFloat(float64(s.Temperature), 'g', -1, 32), s.TopK, strconv.FormatFloat(float64(s.TopP), 'g', -1, 32), s.Seed, s.Steps)
	return derive("verdict/request/v1", r.Model[:], r.Nonce, []byte(sampling), packTokens(s.Stop), packTokens(r.Prompt))
}

// ReceiptRequest returns the RequestHash of a receipt's canonical bytes
// (for a requester that opens its escrow once it holds the receipt).
func ReceiptRequest(b []byte) (Hash, error) {
	r, err := receipt.Parse(b)
	if err != nil {
		return Hash{}, fmt.Errorf("receipt request: %w", err)
	}
	return RequestHash(r), nil
}

func packTokens(ts []int) []byte {
	b := make([]byte, 0, 3*len(ts))
	for _, t := range ts {
		b = append(b, byte(t), byte(t>>8), byte(t>>16))
	}
	return b
}
