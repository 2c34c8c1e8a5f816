// Package inference holds what the services share about a generation: the
// request (Request), its streamed pieces (Delta) and its outcome (Result,
// with the signed receipt), the served models (ModelInfo), the outcome of
// checking a receipt (Verification), the errors a generation fails with
// (ErrUnknownModel, ErrContextLength, ErrInvalid, ErrBusy, ErrNotFound,
// and PartialError for a generation cut short, with the receipt of what
// was generated), the interfaces a service runs generations through
// (Backend, Verifier), the charge a paid receipt carries to the ledger
// side (Charge) and the outcome of a generation paid with x402 (Payment).
//
// It is a package of types, in the manner of upspin's top-level package:
// the worker (internal/worker) implements Backend and Verifier; the
// gateway, the MCP server and the verifier use them without importing the
// worker, so that none of them depends on how generations are run or how
// receipts reach the ledger (internal/deps pins this).
package inference
