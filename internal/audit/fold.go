package audit

import (
	"fmt"

	"github.com/verdictnet/verdict/internal/detmath"
	"github.com/verdictnet/verdict/internal/dispute"
	"github.com/verdictnet/verdict/internal/kernels"
)

// DisputePartBytes bounds the raw bytes of the values one answer of a
// dispute opens (docs/protocol.md 8.1): an attention leaf whose inputs (a
// state and the key/value leaves of one head at every position up to its
// own) take more is recomputed from its inputs read in parts of at most
// this many bytes, in three passes. 2 MiB of values is about 3.6 MiB once
// the answer is base64-encoded inside a transaction, within the ledger's
// 6 MiB transaction limit.
const DisputePartBytes = 2 << 20

// AttentionPasses is the number of passes over the inputs of an attention
// leaf read in parts: the scores' maximum, the sum of their exponentials,
// the weighted sum of the values (the three steps of the engine's
// softmax and value sum, in its order).
const AttentionPasses = 3

var _ dispute.Folder = (*Referee)(nil)

// WithPartBytes sets the bound on the raw bytes of one answer's values
// (DisputePartBytes unless set). Every party and referee of a game must
// use the same; tests set a small one to read short receipts in parts.
func (r *Referee) WithPartBytes(n int) *Referee {
	r.partBytes = n
	return r
}

func (r *Referee) parts() int {
	if r.partBytes > 0 {
		return r.partBytes
	}
	return DisputePartBytes
}

// partSize is the number of inputs in one part of an attention leaf's
// inputs: the state (in the first part) and as many key/value leaves as
// fit in the bound, at least two inputs.
func partSize(lay Layout, partBytes int) int {
	return max(2, 1+(partBytes-4*lay.Dim)/(8*lay.HeadDim))
}

// Parts implements dispute.Folder: an attention leaf A(l, h, p) whose
// inputs take more than the part bound is read in AttentionPasses passes
// of parts of partSize inputs; every other leaf at once.
func (r *Referee) Parts(d int) (passes, size int) {
	lay := r.lay
	if d < 0 || d >= lay.Leaves() {
		return 0, 0
	}
	kind, _, _, p := lay.Leaf(d)
	if kind != 'a' || 4*lay.Dim+(p+1)*8*lay.HeadDim <= r.parts() {
		return 0, 0
	}
	return AttentionPasses, partSize(lay, r.parts())
}

// foldState is the referee's state while it reads an attention leaf's
// inputs in parts, for the G query heads reading the leaf's key/value
// head: their queries, the scores' running maximum, the 16 lanes of the
// running sum of exponentials (kernels.SumRef's order) and, after the
// second pass, the sum, and the running weighted sum of values. It is
// encoded as little-endian float32 values in that order.
type foldState struct {
	q, max, lanes, sum, out []float32
}

func (r *Referee) newFold() foldState {
	G, hd := r.lay.AWidth()/r.lay.HeadDim, r.lay.HeadDim
	return foldState{q: make([]float32, G*hd), max: make([]float32, G), lanes: make([]float32, G*kernels.Lanes), sum: make([]float32, G), out: make([]float32, G*hd)}
}

func (f foldState) encode() []byte {
	b := appendF32(nil, f.q)
	for _, v := range [][]float32{f.max, f.lanes, f.sum, f.out} {
		b = appendF32(b, v)
	}
	return b
}

func (r *Referee) decodeFold(b []byte) (foldState, error) {
	f := r.newFold()
	n := 0
	for _, v := range [][]float32{f.q, f.max, f.lanes, f.sum, f.out} {
		n += len(v)
	}
	all, ok := floats(b, n)
	if !ok {
		return f, fmt.Errorf("attention state of %d bytes, want %d", len(b), 4*n)
	}
	for _, v := range [][]float32{f.q, f.max, f.lanes, f.sum, f.out} {
		all = all[copy(v, all):]
	}
	return f, nil
}

// Fold implements dispute.Folder: it reads part k of a pass over the
// inputs of attention leaf d (docs/protocol.md 8.1). The first part of the
// first pass starts with the state X(l, p), from which it computes the
// queries; every key/value leaf KV(l, h, t) gives the scores
// s_t = Dot(q, k_t) / sqrt(hd) of each query head, from which pass 0 takes
// the maximum m (the first score, then every greater one in order), pass 1
// adds exp(s_t - m) to lane t mod 16 of the sum, which ends as
// kernels.SumRef does, and pass 2 adds float32(exp(s_t - m) / sum * v_t,i)
// to output i, in order of t: the steps of engine.Attend, value for value.
func (r *Referee) Fold(d, pass, part int, values [][]byte, state []byte) ([]byte, error) {
	lay := r.lay
	passes, size := r.Parts(d)
	if passes == 0 {
		return nil, fmt.Errorf("leaf %d is not read in parts", d)
	}
	if pass < 0 || pass >= passes || part < 0 {
		return nil, fmt.Errorf("leaf %d: no part %d of pass %d", d, part, pass)
	}
	_, l, h, p := lay.Leaf(d)
	n := p + 2 // X(l, p) and KV(l, h, 0..p)
	lo := part * size
	hi := min(lo+size, n)
	if lo >= n || len(values) != hi-lo {
		return nil, fmt.Errorf("leaf %d: part %d has %d values, want %d", d, part, len(values), max(0, hi-lo))
	}
	hd := lay.HeadDim
	G := lay.AWidth() / hd
	var f foldState
	if state == nil {
		if pass != 0 || part != 0 {
			return nil, fmt.Errorf("leaf %d: no state before part %d of pass %d", d, part, pass)
		}
		x, ok := floats(values[0], lay.Dim)
		if !ok {
			return nil, fmt.Errorf("leaf %d: input state has %d bytes, want %d", d, len(values[0]), 4*lay.Dim)
		}
		q, _, _, err := r.calc.qkv(l, p, x)
		if err != nil {
			return nil, fmt.Errorf("leaf %d: %w", d, err)
		}
		f = r.newFold()
		copy(f.q, q[h*G*hd:(h+1)*G*hd])
	} else {
		var err error
		if f, err = r.decodeFold(state); err != nil {
			return nil, fmt.Errorf("leaf %d: %w", d, err)
		}
	}
	r.LeavesRead += len(values)
	scale := detmath.Sqrt32(float32(hd)) // the engine's attention scale
	for j := lo; j < hi; j++ {
		v := values[j-lo]
		r.BytesRead += len(v)
		if j == 0 {
			continue // the state: its queries are in f.q
		}
		kv, ok := floats(v, 2*hd)
		if !ok {
			return nil, fmt.Errorf("leaf %d: key/value input has %d bytes, want %d", d, len(v), 8*hd)
		}
		t := j - 1
		key, val := kv[:hd], kv[hd:]
		for g := 0; g < G; g++ {
			s := kernels.Dot(f.q[g*hd:(g+1)*hd], key) / scale
			switch pass {
			case 0:
				if t == 0 || s > f.max[g] {
					f.max[g] = s
				}
			case 1:
				lane := &f.lanes[g*kernels.Lanes+t%kernels.Lanes]
				*lane = *lane + detmath.Exp32(s-f.max[g])
			case 2:
				a := detmath.Exp32(s-f.max[g]) / f.sum[g]
				out := f.out[g*hd : (g+1)*hd]
				for i := range out {
					out[i] = out[i] + float32(a*val[i])
				}
			}
		}
	}
	if pass == 1 && hi == n {
		for g := 0; g < G; g++ {
			f.sum[g] = foldLanes(f.lanes[g*kernels.Lanes : (g+1)*kernels.Lanes])
		}
	}
	return f.encode(), nil
}

// foldLanes adds the 16 lanes of a sum pairwise, as kernels.SumRef ends.
func foldLanes(lanes []float32) float32 {
	acc := append([]float32(nil), lanes...)
	for w := kernels.Lanes / 2; w >= 1; w /= 2 {
		for j := 0; j < w; j++ {
			acc[j] = acc[j] + acc[j+w]
		}
	}
	return acc[0]
}

// Finish implements dispute.Folder: the attention leaf is the weighted
// sums of its query heads after the last pass.
func (r *Referee) Finish(d int, state []byte) ([]byte, error) {
	if passes, _ := r.Parts(d); passes == 0 {
		return nil, fmt.Errorf("leaf %d is not read in parts", d)
	}
	f, err := r.decodeFold(state)
	if err != nil {
		return nil, fmt.Errorf("leaf %d: %w", d, err)
	}
	r.Calls++
	return appendF32(nil, f.out), nil
}
