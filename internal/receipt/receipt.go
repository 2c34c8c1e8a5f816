package receipt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/verdictnet/verdict/internal/merkle"
)

// Version is the receipt format version.
const Version = 1

// DefaultSpec is the determinism specification version of the engine
// (engine.SpecVersion); receipts carry whichever version produced them.
const DefaultSpec = "verdict-det/2"

// Limits on what Parse accepts.
const (
	MaxTokens   = 1 << 20 // per token list
	MaxTokenID  = 1<<24 - 1
	MaxSpecLen  = 64
	MaxNonceLen = 64 // bytes
	// MaxSize bounds an encoded receipt: the fixed fields plus 4 base64
	// characters per token.
	MaxSize = 2048 + 8*MaxTokens
)

// signDomain prefixes the bytes a worker signs.
const signDomain = "verdict/receipt/v1\x00"

// Sampling holds the sampling parameters (package sampler's Params) and the
// stopping rule. Temperature 0 means greedy.
type Sampling struct {
	Temperature float32
	TopK        int     // 0: no limit
	TopP        float32 // 0 or 1: no cut
	Seed        uint64
	// Steps is the number of positions the generation could feed, prompt
	// included (generate.Request.Steps after capping): without a stop
	// token it emits Steps-len(Prompt)+1 tokens.
	Steps int
	// Stop lists the tokens that end the generation (kept in the output).
	Stop []int
}

// Receipt is one signed inference record.
type Receipt struct {
	Version  int
	Spec     string // determinism specification, e.g. "verdict-det/2"
	Model    merkle.Hash
	Worker   ed25519.PublicKey
	Nonce    []byte // request id chosen by the requester; may be empty
	Sampling Sampling
	Prompt   []int
	// ChatTemplate commits to the chat template and the request it
	// rendered into Prompt (chat.Digest; docs/protocol.md, "chat
	// template"); zero when the prompt was given as text or tokens.
	ChatTemplate merkle.Hash
	Output       []int
	LogitsRoot   merkle.Hash // over the logit vector of every output token
	TraceRoot    merkle.Hash // over the trace cells (docs/protocol.md)
	Signature    []byte
}

// ErrSignature is returned (wrapped) by Verify for a missing or bad signature.
var ErrSignature = errors.New("receipt: bad signature")

func formatFloat(f float32) string { return strconv.FormatFloat(float64(f), 'g', -1, 32) }

func packTokens(ts []int) string {
	b := make([]byte, 3*len(ts))
	for i, t := range ts {
		b[3*i] = byte(t)
		b[3*i+1] = byte(t >> 8)
		b[3*i+2] = byte(t >> 16)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func unpackTokens(s string) ([]int, error) {
	if len(s)%4 != 0 {
		return nil, fmt.Errorf("length %d is not a multiple of 4", len(s))
	}
	if len(s)/4 > MaxTokens {
		return nil, fmt.Errorf("%d tokens, at most %d allowed", len(s)/4, MaxTokens)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b)%3 != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of 3-byte tokens", len(b))
	}
	ts := make([]int, len(b)/3)
	for i := range ts {
		ts[i] = int(b[3*i]) | int(b[3*i+1])<<8 | int(b[3*i+2])<<16
	}
	return ts, nil
}

// check validates field values (not the signature).
func (r *Receipt) check() error {
	if r.Version != Version {
		return fmt.Errorf("version %d, want %d", r.Version, Version)
	}
	if r.Spec == "" || len(r.Spec) > MaxSpecLen {
		return fmt.Errorf("spec %.80q: want 1 to %d characters", r.Spec, MaxSpecLen)
	}
	for i := 0; i < len(r.Spec); i++ {
		if c := r.Spec[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return fmt.Errorf("spec %.80q: byte %d is not printable ASCII", r.Spec, i)
		}
	}
	if len(r.Worker) != ed25519.PublicKeySize {
		return fmt.Errorf("worker key has %d bytes, want %d", len(r.Worker), ed25519.PublicKeySize)
	}
	if len(r.Nonce) > MaxNonceLen {
		return fmt.Errorf("nonce has %d bytes, at most %d allowed", len(r.Nonce), MaxNonceLen)
	}
	s := r.Sampling
	if math.IsNaN(float64(s.Temperature)) || math.IsInf(float64(s.Temperature), 0) || s.Temperature < 0 || math.Signbit(float64(s.Temperature)) {
		return fmt.Errorf("temperature %v: want a finite number >= 0 (not -0)", s.Temperature)
	}
	if !(s.TopP >= 0 && s.TopP <= 1) || math.Signbit(float64(s.TopP)) {
		return fmt.Errorf("top_p %v: want 0 <= top_p <= 1 (not -0)", s.TopP)
	}
	if s.Steps < len(r.Prompt) || s.Steps > MaxTokens {
		return fmt.Errorf("steps %d: want between the prompt length %d and %d", s.Steps, len(r.Prompt), MaxTokens)
	}
	if len(s.Stop) > 16 {
		return fmt.Errorf("%d stop tokens, at most 16 allowed", len(s.Stop))
	}
	if s.TopK < 0 || s.TopK > MaxTokenID+1 {
		return fmt.Errorf("top_k %d out of range", s.TopK)
	}
	for _, l := range []struct {
		name string
		ts   []int
	}{{"prompt", r.Prompt}, {"output", r.Output}, {"stop", r.Sampling.Stop}} {
		name, ts := l.name, l.ts
		if len(ts) > MaxTokens {
			return fmt.Errorf("%s has %d tokens, at most %d allowed", name, len(ts), MaxTokens)
		}
		for i, t := range ts {
			if t < 0 || t > MaxTokenID {
				return fmt.Errorf("%s token %d is %d, out of range 0..%d", name, i, t, MaxTokenID)
			}
		}
	}
	if len(r.Prompt) == 0 {
		return fmt.Errorf("empty prompt")
	}
	if r.Signature != nil && len(r.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("signature has %d bytes, want %d", len(r.Signature), ed25519.SignatureSize)
	}
	return nil
}

// encode writes the canonical encoding, with or without the signature field.
func (r *Receipt) encode(withSig bool) []byte {
	var b bytes.Buffer
	b.Grow(800 + 4*(len(r.Prompt)+len(r.Output)))
	b.WriteString(`{"version":`)
	b.WriteString(strconv.Itoa(r.Version))
	b.WriteString(`,"spec":"`)
	b.WriteString(r.Spec)
	b.WriteString(`","model":"`)
	b.WriteString(r.Model.String())
	b.WriteString(`","worker":"`)
	b.WriteString(hex.EncodeToString(r.Worker))
	b.WriteString(`","nonce":"`)
	b.WriteString(hex.EncodeToString(r.Nonce))
	b.WriteString(`","temperature":`)
	b.WriteString(formatFloat(r.Sampling.Temperature))
	b.WriteString(`,"top_k":`)
	b.WriteString(strconv.Itoa(r.Sampling.TopK))
	b.WriteString(`,"top_p":`)
	b.WriteString(formatFloat(r.Sampling.TopP))
	b.WriteString(`,"seed":"`)
	b.WriteString(strconv.FormatUint(r.Sampling.Seed, 10))
	b.WriteString(`","steps":`)
	b.WriteString(strconv.Itoa(r.Sampling.Steps))
	b.WriteString(`,"stop":"`)
	b.WriteString(packTokens(r.Sampling.Stop))
	b.WriteString(`","prompt":"`)
	b.WriteString(packTokens(r.Prompt))
	if r.ChatTemplate != (merkle.Hash{}) {
		b.WriteString(`","chat_template":"`)
		b.WriteString(r.ChatTemplate.String())
	}
	b.WriteString(`","output":"`)
	b.WriteString(packTokens(r.Output))
	b.WriteString(`","logits_root":"`)
	b.WriteString(r.LogitsRoot.String())
	b.WriteString(`","trace_root":"`)
	b.WriteString(r.TraceRoot.String())
	b.WriteString(`"`)
	if withSig {
		b.WriteString(`,"signature":"`)
		b.WriteString(hex.EncodeToString(r.Signature))
		b.WriteString(`"`)
	}
	b.WriteString(`}`)
	return b.Bytes()
}

// Marshal returns the canonical encoding of a signed receipt.
func (r *Receipt) Marshal() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if r.Signature == nil {
		return nil, fmt.Errorf("receipt: not signed")
	}
	return r.encode(true), nil
}

// SigningBytes returns what the worker signs: a domain prefix followed by
// the canonical encoding without the signature field.
func (r *Receipt) SigningBytes() []byte {
	return append([]byte(signDomain), r.encode(false)...)
}

// Sign sets Worker to priv's public key and signs the receipt.
func (r *Receipt) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("receipt: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	r.Worker = priv.Public().(ed25519.PublicKey)
	r.Signature = nil
	if err := r.check(); err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	r.Signature = ed25519.Sign(priv, r.SigningBytes())
	return nil
}

// Verify checks the fields and the worker's signature.
func (r *Receipt) Verify() error {
	if err := r.check(); err != nil {
		return fmt.Errorf("receipt: %w", err)
	}
	if r.Signature == nil {
		return fmt.Errorf("receipt: missing signature: %w", ErrSignature)
	}
	if !ed25519.Verify(r.Worker, r.SigningBytes(), r.Signature) {
		return fmt.Errorf("receipt: signature does not verify against worker %x: %w", []byte(r.Worker), ErrSignature)
	}
	return nil
}

// ID is SHA-256 of the canonical encoding including the signature. Verify
// rejects non-canonical signatures, so no one but the worker can turn a
// valid receipt into another valid one with another id; the worker itself
// could sign the same fields again with another nonce (docs/protocol.md).
func (r *Receipt) ID() [32]byte { return sha256.Sum256(r.encode(true)) }

// wire mirrors the JSON fields for decoding.
type wire struct {
	Version      int         `json:"version"`
	Spec         string      `json:"spec"`
	Model        string      `json:"model"`
	Worker       string      `json:"worker"`
	Nonce        string      `json:"nonce"`
	Temperature  json.Number `json:"temperature"`
	TopK         int         `json:"top_k"`
	TopP         json.Number `json:"top_p"`
	Seed         string      `json:"seed"`
	Steps        int         `json:"steps"`
	Stop         string      `json:"stop"`
	Prompt       string      `json:"prompt"`
	ChatTemplate string      `json:"chat_template"`
	Output       string      `json:"output"`
	LogitsRoot   string      `json:"logits_root"`
	TraceRoot    string      `json:"trace_root"`
	Signature    string      `json:"signature"`
}

func parseFloat32(name string, n json.Number) (float32, error) {
	f, err := strconv.ParseFloat(string(n), 32)
	if err != nil {
		return 0, fmt.Errorf("%s %.40q: %w", name, string(n), err)
	}
	return float32(f), nil
}

// Parse decodes a receipt and checks that data is its canonical encoding.
// It does not check the signature; call Verify.
func Parse(data []byte) (*Receipt, error) { return parse(data, true) }

// ParseAnySpelling decodes a receipt written in any JSON spelling of its
// fields — pretty-printed, re-ordered or with a trailing newline, as `jq`
// or an editor leaves it — and returns it as Parse would its canonical
// encoding (r.Marshal()). Its id and signature are those of the canonical
// form, so a receipt whose values were changed still fails Verify. It is for
// people and tools handing a receipt to a verifier; everything that stores
// or forwards receipts (the ledger, the worker) uses Parse.
func ParseAnySpelling(data []byte) (*Receipt, error) {
	r, err := parse(data, false)
	if err != nil {
		return nil, err
	}
	// The canonical form must itself parse: the values are representable.
	enc, err := r.Marshal()
	if err != nil {
		return nil, err
	}
	return parse(enc, true)
}

func parse(data []byte, strict bool) (*Receipt, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("receipt: %d bytes, at most %d allowed", len(data), MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("receipt: not a receipt: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("receipt: data after the receipt object")
	}
	r := &Receipt{Version: w.Version, Spec: w.Spec}
	var err error
	if r.Model, err = merkle.ParseHash(w.Model); err != nil {
		return nil, fmt.Errorf("receipt: model: %w", err)
	}
	if r.LogitsRoot, err = merkle.ParseHash(w.LogitsRoot); err != nil {
		return nil, fmt.Errorf("receipt: logits_root: %w", err)
	}
	if r.TraceRoot, err = merkle.ParseHash(w.TraceRoot); err != nil {
		return nil, fmt.Errorf("receipt: trace_root: %w", err)
	}
	if r.Worker, err = hex.DecodeString(w.Worker); err != nil {
		return nil, fmt.Errorf("receipt: worker: %w", err)
	}
	if r.Nonce, err = hex.DecodeString(w.Nonce); err != nil {
		return nil, fmt.Errorf("receipt: nonce: %w", err)
	}
	if r.Signature, err = hex.DecodeString(w.Signature); err != nil {
		return nil, fmt.Errorf("receipt: signature: %w", err)
	}
	if len(r.Signature) == 0 {
		return nil, fmt.Errorf("receipt: missing signature: %w", ErrSignature)
	}
	if r.Sampling.Temperature, err = parseFloat32("temperature", w.Temperature); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if r.Sampling.TopP, err = parseFloat32("top_p", w.TopP); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	r.Sampling.TopK = w.TopK
	if r.Sampling.Seed, err = strconv.ParseUint(w.Seed, 10, 64); err != nil {
		return nil, fmt.Errorf("receipt: seed: %w", err)
	}
	r.Sampling.Steps = w.Steps
	if r.Sampling.Stop, err = unpackTokens(w.Stop); err != nil {
		return nil, fmt.Errorf("receipt: stop: %w", err)
	}
	if len(r.Sampling.Stop) == 0 {
		r.Sampling.Stop = nil
	}
	if r.Prompt, err = unpackTokens(w.Prompt); err != nil {
		return nil, fmt.Errorf("receipt: prompt: %w", err)
	}
	if w.ChatTemplate != "" {
		if r.ChatTemplate, err = merkle.ParseHash(w.ChatTemplate); err != nil {
			return nil, fmt.Errorf("receipt: chat_template: %w", err)
		}
	}
	if r.Output, err = unpackTokens(w.Output); err != nil {
		return nil, fmt.Errorf("receipt: output: %w", err)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("receipt: %w", err)
	}
	if strict && !bytes.Equal(r.encode(true), data) {
		return nil, fmt.Errorf("receipt: not in canonical form (field order, white space, number or hex spelling)")
	}
	return r, nil
}

// LogitsLeaf returns the leaf data for one logit vector: its float32 values
// little-endian.
func LogitsLeaf(logits []float32) []byte {
	b := make([]byte, 4*len(logits))
	for i, v := range logits {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// LogitsRoot returns the Merkle root over logit vectors, one leaf per
// generated token in order.
func LogitsRoot(rows [][]float32) merkle.Hash {
	var b merkle.Builder
	for _, r := range rows {
		b.Add(LogitsLeaf(r))
	}
	return b.Root()
}
