package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"unsafe"

	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// leafKey names a trace leaf independently of the final position count:
// kind 'x' (state entering layer l; l = Layers: final), 'k' (key/value of
// head h), 'a' (attention output of the query heads reading head h).
type leafKey struct {
	kind    byte
	p, l, h int
}

// Recorder commits to a generation as it runs: it is the engine.Tracer of
// the forward passes, and sees every logit vector. It keeps one hash per
// leaf, never the trace itself (unless asked to keep it, for openings).
type Recorder struct {
	c      model.Config
	prompt []int
	hd     int
	x      [][]merkle.Hash   // [layer][p], Layers+1 layers (the last: final states)
	a      [][][]merkle.Hash // [layer][head][p]
	kv     [][][]merkle.Hash // [layer][head][p]
	logits []merkle.Hash     // by position - (len(prompt)-1)
	h      hash.Hash
	buf    []byte
	got    map[leafKey][]byte // every leaf's data, when keeping the trace
	err    error
}

// NewRecorder starts recording a generation of model config c from prompt.
func NewRecorder(c model.Config, prompt []int) *Recorder {
	r := &Recorder{c: c, prompt: append([]int(nil), prompt...), hd: c.HeadDim(), h: sha256.New()}
	r.x = make([][]merkle.Hash, c.Layers+1)
	r.a = make([][][]merkle.Hash, c.Layers)
	r.kv = make([][][]merkle.Hash, c.Layers)
	for l := range r.kv {
		r.kv[l] = make([][]merkle.Hash, c.KVHeads)
		r.a[l] = make([][]merkle.Hash, c.KVHeads)
	}
	return r
}

func appendF32(b []byte, xs []float32) []byte {
	for _, v := range xs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func (r *Recorder) leaf(k leafKey, parts ...[]float32) merkle.Hash {
	if r.got != nil {
		r.buf = r.buf[:0]
		for _, p := range parts {
			r.buf = appendF32(r.buf, p)
		}
		r.got[k] = append([]byte(nil), r.buf...)
		return merkle.LeafHash(r.buf)
	}
	return r.leafHash(parts...)
}

// leafHash is merkle.LeafHash of the concatenated little-endian bytes of
// parts, hashed in place (the engine's floats are little-endian in memory,
// as kernels.F32Row assumes), without building the byte string.
func (r *Recorder) leafHash(parts ...[]float32) merkle.Hash {
	r.h.Reset()
	r.h.Write([]byte{0})
	for _, p := range parts {
		if len(p) > 0 {
			r.h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), 4*len(p)))
		}
	}
	var out merkle.Hash
	r.h.Sum(out[:0])
	return out
}

func set(s []merkle.Hash, p int, v merkle.Hash) []merkle.Hash {
	for len(s) <= p {
		s = append(s, merkle.Hash{})
	}
	s[p] = v
	return s
}

// Layer implements engine.Tracer.
func (r *Recorder) Layer(l, pos int, x, k, v, attn []float32) {
	if l < 0 || l >= r.c.Layers || pos < 0 {
		r.err = fmt.Errorf("trace: layer %d position %d out of range", l, pos)
		return
	}
	r.x[l] = set(r.x[l], pos, r.leaf(leafKey{kind: 'x', p: pos, l: l}, x))
	hd, w := r.hd, r.c.Dim/r.c.KVHeads
	for h := 0; h < r.c.KVHeads; h++ {
		r.kv[l][h] = set(r.kv[l][h], pos, r.leaf(leafKey{kind: 'k', p: pos, l: l, h: h}, k[h*hd:(h+1)*hd], v[h*hd:(h+1)*hd]))
		r.a[l][h] = set(r.a[l][h], pos, r.leaf(leafKey{kind: 'a', p: pos, l: l, h: h}, attn[h*w:(h+1)*w]))
	}
}

// Final implements engine.Tracer.
func (r *Recorder) Final(pos int, x []float32) {
	if pos < 0 {
		return
	}
	L := r.c.Layers
	r.x[L] = set(r.x[L], pos, r.leaf(leafKey{kind: 'x', p: pos, l: L}, x))
}

// Logits records the logit vector computed at position pos (pass every
// vector; those before the last prompt position are ignored).
func (r *Recorder) Logits(pos int, logits []float32) {
	j := pos - (len(r.prompt) - 1)
	if j < 0 {
		return
	}
	for len(r.logits) <= j {
		r.logits = append(r.logits, merkle.Hash{})
	}
	r.logits[j] = r.leafHash(logits)
}

// Roots returns the logits root and the trace root for an output of n
// tokens, checking that every leaf was recorded.
func (r *Recorder) Roots(n int) (logitsRoot, traceRoot merkle.Hash, err error) {
	t, err := r.traceTree(n)
	if err != nil {
		return logitsRoot, traceRoot, err
	}
	lt, err := r.logitsTree(n)
	if err != nil {
		return logitsRoot, traceRoot, err
	}
	return lt.Root(), t.Root(), nil
}

func (r *Recorder) logitsTree(n int) (*merkle.Tree, error) {
	if len(r.logits) < n {
		return nil, fmt.Errorf("trace: %d logit vectors recorded for %d output tokens", len(r.logits), n)
	}
	return merkle.NewTree(append([]merkle.Hash(nil), r.logits[:n]...)), nil
}

func (r *Recorder) traceTree(n int) (*merkle.Tree, error) {
	if r.err != nil {
		return nil, r.err
	}
	lay := NewLayout(r.c, len(r.prompt), n)
	T := lay.Positions()
	if n < 1 {
		return nil, fmt.Errorf("trace: no output")
	}
	leaves := make([]merkle.Hash, 0, lay.Leaves())
	var zero merkle.Hash
	add := func(s []merkle.Hash, what string, l int) error {
		if len(s) < T {
			return fmt.Errorf("trace: %s of layer %d recorded for %d positions, %d needed", what, l, len(s), T)
		}
		for p, h := range s[:T] {
			if h == zero {
				return fmt.Errorf("trace: %s of layer %d position %d missing", what, l, p)
			}
		}
		leaves = append(leaves, s[:T]...)
		return nil
	}
	for l := 0; l <= r.c.Layers; l++ {
		if err := add(r.x[l], "state", l); err != nil {
			return nil, err
		}
		if l == r.c.Layers {
			break
		}
		for h := range r.kv[l] {
			if err := add(r.kv[l][h], "key/value", l); err != nil {
				return nil, err
			}
		}
		for h := range r.a[l] {
			if err := add(r.a[l][h], "attention", l); err != nil {
				return nil, err
			}
		}
	}
	return merkle.NewTree(leaves), nil
}

// Receipt signs a receipt for the recorded generation.
func (r *Recorder) Receipt(modelID merkle.Hash, spec string, p sampler.Params, steps int, stop []int, output []int, nonce []byte, k *keys.Key) (*receipt.Receipt, error) {
	lr, tr, err := r.Roots(len(output))
	if err != nil {
		return nil, err
	}
	rc := &receipt.Receipt{
		Version: receipt.Version, Spec: spec, Model: modelID, Nonce: nonce,
		Sampling: receipt.Sampling{Temperature: p.Temperature, TopK: p.TopK, TopP: p.TopP, Seed: p.Seed, Steps: steps, Stop: append([]int(nil), stop...)},
		Prompt:   append([]int(nil), r.prompt...), Output: append([]int(nil), output...),
		LogitsRoot: lr, TraceRoot: tr,
	}
	if err := rc.Sign(k.Private); err != nil {
		return nil, err
	}
	return rc, nil
}

// SamplerParams returns the sampling parameters of a receipt.
func SamplerParams(r *receipt.Receipt) sampler.Params {
	s := r.Sampling
	return sampler.Params{Temperature: s.Temperature, TopK: s.TopK, TopP: s.TopP, Seed: s.Seed}
}

// EffectiveSteps is the step count generate.Run uses for a requested one.
func EffectiveSteps(steps, contextLen int) int {
	if steps <= 0 || steps > contextLen {
		return contextLen
	}
	return steps
}
