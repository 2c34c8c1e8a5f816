package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
)

// OpeningsVersion is the openings format version.
const OpeningsVersion = 1

// MaxOpenings bounds an encoded openings file.
const MaxOpenings = 256 << 20

// CellOpening is what a worker reveals for one cell.
type CellOpening struct {
	Cell int
	Head int // layer cells: the key/value head whose attention is checked
	// Layer cells (p, l): In is the state entering layer l at p, Attn the
	// layer's attention output at p (the attention leaves of key/value
	// heads 0, 1, ... concatenated), Out the state entering layer l+1 (the
	// final state after the last layer), KV the key/value leaves of Head
	// at positions 0..p concatenated. Logits cells: In is the final state.
	In, Attn, Out, KV []byte
}

// Openings answer one challenge for one receipt.
type Openings struct {
	Version     int
	Receipt     [32]byte
	Seed        uint64
	Cells       []CellOpening
	TraceProof  []merkle.Hash // multi-proof of every trace leaf the cells touch
	LogitsProof []merkle.Hash // multi-proof of the logits leaves of logits cells
}

type cellWire struct {
	Cell int    `json:"cell"`
	Head int    `json:"head"`
	In   string `json:"in"`
	Attn string `json:"attn,omitempty"`
	Out  string `json:"out,omitempty"`
	KV   string `json:"kv,omitempty"`
}

type openingsWire struct {
	Version     int        `json:"version"`
	Receipt     string     `json:"receipt"`
	Seed        string     `json:"seed"`
	Cells       []cellWire `json:"cells"`
	TraceProof  []string   `json:"trace_proof"`
	LogitsProof []string   `json:"logits_proof"`
}

func (o *Openings) encode() []byte {
	w := openingsWire{Version: o.Version, Receipt: hex.EncodeToString(o.Receipt[:]), Seed: strconv.FormatUint(o.Seed, 10),
		Cells: make([]cellWire, len(o.Cells)), TraceProof: merkle.HexHashes(o.TraceProof), LogitsProof: merkle.HexHashes(o.LogitsProof)}
	b64 := base64.StdEncoding.EncodeToString
	for i, c := range o.Cells {
		w.Cells[i] = cellWire{Cell: c.Cell, Head: c.Head, In: b64(c.In), Attn: b64(c.Attn), Out: b64(c.Out), KV: b64(c.KV)}
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic("audit: encoding openings: " + err.Error())
	}
	return b
}

// Marshal returns the canonical JSON encoding.
func (o *Openings) Marshal() []byte { return o.encode() }

// ParseOpenings decodes openings and checks the encoding is canonical.
func ParseOpenings(data []byte) (*Openings, error) {
	if len(data) > MaxOpenings {
		return nil, fmt.Errorf("openings: %d bytes, at most %d allowed", len(data), MaxOpenings)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w openingsWire
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("openings: not an openings file: %w", err)
	}
	if w.Version != OpeningsVersion {
		return nil, fmt.Errorf("openings: version %d, want %d", w.Version, OpeningsVersion)
	}
	o := &Openings{Version: w.Version}
	id, err := hex.DecodeString(w.Receipt)
	if err != nil || len(id) != 32 {
		return nil, fmt.Errorf("openings: receipt id %.80q is not 64 hex digits", w.Receipt)
	}
	copy(o.Receipt[:], id)
	if o.Seed, err = strconv.ParseUint(w.Seed, 10, 64); err != nil {
		return nil, fmt.Errorf("openings: seed: %w", err)
	}
	if o.TraceProof, err = merkle.ParseHexHashes(w.TraceProof, merkle.MaxMultiProof); err != nil {
		return nil, fmt.Errorf("openings: trace_proof: %w", err)
	}
	if o.LogitsProof, err = merkle.ParseHexHashes(w.LogitsProof, merkle.MaxMultiProof); err != nil {
		return nil, fmt.Errorf("openings: logits_proof: %w", err)
	}
	dec64 := base64.StdEncoding.Strict().DecodeString
	for i, c := range w.Cells {
		co := CellOpening{Cell: c.Cell, Head: c.Head}
		if co.In, err = dec64(c.In); err != nil {
			return nil, fmt.Errorf("openings: cell %d: in: %w", i, err)
		}
		if co.Attn, err = dec64(c.Attn); err != nil {
			return nil, fmt.Errorf("openings: cell %d: attn: %w", i, err)
		}
		if co.Out, err = dec64(c.Out); err != nil {
			return nil, fmt.Errorf("openings: cell %d: out: %w", i, err)
		}
		if co.KV, err = dec64(c.KV); err != nil {
			return nil, fmt.Errorf("openings: cell %d: kv: %w", i, err)
		}
		o.Cells = append(o.Cells, co)
	}
	if !bytes.Equal(o.encode(), data) {
		return nil, fmt.Errorf("openings: not in canonical form")
	}
	return o, nil
}

// needs lists, for each selected cell, the trace leaves whose data the
// worker ships.
func (l Layout) plan(id [32]byte, seed uint64, cells []int) ([]Cell, []int) {
	cs := make([]Cell, len(cells))
	heads := make([]int, len(cells))
	for i, c := range cells {
		cs[i], _ = l.Cell(c)
		if !cs[i].Logits {
			heads[i] = l.Head(id, seed, c)
		}
	}
	return cs, heads
}

// Trace is a regenerated trace of one receipt, kept whole so that any
// number of challenges can be answered from it.
type Trace struct {
	r      *receipt.Receipt
	lay    Layout
	rec    *Recorder
	trace  *merkle.Tree
	logits *merkle.Tree
}

// Regenerate re-runs a receipt's prompt and output on e as one prefill and
// keeps the whole trace. It fails when the trace does not give the
// receipt's roots. A long receipt's pass takes seconds to minutes: ctx is
// checked between the engine's passes (replayChunk positions each), and
// its error, wrapped, is returned once it ends.
func Regenerate(ctx context.Context, e *engine.Engine, r *receipt.Receipt) (*Trace, error) {
	t, err := regenerate(ctx, e, r)
	if err != nil {
		return nil, err
	}
	if t.trace.Root() != r.TraceRoot || t.logits.Root() != r.LogitsRoot {
		return nil, fmt.Errorf("open: regenerating the trace does not give the receipt's roots; this model did not produce the receipt")
	}
	return t, nil
}

// RegenerateLeaves is Regenerate keeping the data of the given trace
// leaves alone (every leaf is hashed, so the tree is whole; LeafValue of
// another leaf is an error). A dispute party needs the values of the
// inputs of the one disputed leaf only (Referee.Inputs): for an attention
// leaf, a state and one head's keys and values, T*2*hd floats, where the
// whole trace of a long receipt (about L*T*(2*dim+2*kv_dim) floats: 170
// GB for llama3.1-8b at 131072 positions) does not fit in memory.
func RegenerateLeaves(ctx context.Context, e *engine.Engine, r *receipt.Receipt, leaves []int) (*Trace, error) {
	t, err := RetraceLeaves(ctx, e, r, leaves)
	if err != nil {
		return nil, err
	}
	if t.trace.Root() != r.TraceRoot || t.logits.Root() != r.LogitsRoot {
		return nil, fmt.Errorf("open: regenerating the trace does not give the receipt's roots; this model did not produce the receipt")
	}
	return t, nil
}

// RetraceLeaves is Retrace keeping the data of the given leaves alone, as
// RegenerateLeaves does: a challenger's side of a dispute over a long
// receipt. ctx is checked as Regenerate checks it.
func RetraceLeaves(ctx context.Context, e *engine.Engine, r *receipt.Receipt, leaves []int) (*Trace, error) {
	lay := NewLayout(e.Model().Config, len(r.Prompt), len(r.Output))
	only := make(map[leafKey]bool, len(leaves))
	for _, i := range leaves {
		if i < 0 || i >= lay.Leaves() {
			return nil, fmt.Errorf("open: leaf %d out of range", i)
		}
		kind, l, h, p := lay.Leaf(i)
		if kind == 'x' {
			h = 0
		}
		only[leafKey{kind: kind, p: p, l: l, h: h}] = true
	}
	return regenerateKeeping(ctx, e, r, only)
}

func regenerate(ctx context.Context, e *engine.Engine, r *receipt.Receipt) (*Trace, error) {
	return regenerateKeeping(ctx, e, r, nil)
}

func regenerateKeeping(ctx context.Context, e *engine.Engine, r *receipt.Receipt, only map[leafKey]bool) (*Trace, error) {
	m := e.Model()
	lay := NewLayout(m.Config, len(r.Prompt), len(r.Output))
	if err := lay.check(); err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	rec, _, err := prefillKeeping(ctx, e, r, true, only)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	t := &Trace{r: r, lay: lay, rec: rec}
	return t, t.build()
}

func (t *Trace) build() error {
	var err error
	if t.trace, err = t.rec.traceTree(len(t.r.Output)); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if t.logits, err = t.rec.logitsTree(len(t.r.Output)); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	return nil
}

// SeedOf maps a 32-byte audit seed (the ledger's Audit.Seed) to the
// challenge seed Open and Check take: its first 8 bytes, big-endian.
func SeedOf(s [32]byte) uint64 { return binary.BigEndian.Uint64(s[:8]) }

// Open regenerates the trace of a receipt (the worker need have kept
// nothing) and opens the k cells the seed selects.
func Open(ctx context.Context, e *engine.Engine, r *receipt.Receipt, seed uint64, k int) (*Openings, error) {
	if r.Spec != e.Spec() {
		return nil, fmt.Errorf("open: receipt was made under %q, the engine implements %q", r.Spec, e.Spec())
	}
	t, err := Regenerate(ctx, e, r)
	if err != nil {
		return nil, err
	}
	return t.Open(seed, k)
}

// Open answers the challenge (seed, k) from a regenerated trace.
func (t *Trace) Open(seed uint64, k int) (*Openings, error) {
	lay, r := t.lay, t.r
	if k < 1 {
		return nil, fmt.Errorf("open: a challenge selects at least one cell, not %d", k)
	}
	return t.openCells(seed, lay.Select(r.ID(), seed, k))
}

// openCells opens the given cells (ascending) for the challenge seed.
func (t *Trace) openCells(seed uint64, cells []int) (*Openings, error) {
	lay, r, rec := t.lay, t.r, t.rec
	id := r.ID()
	cs, heads := lay.plan(id, seed, cells)
	L := lay.Layers
	o := &Openings{Version: OpeningsVersion, Receipt: id, Seed: seed}
	var traceIdx, logitIdx []int
	for i, c := range cs {
		co := CellOpening{Cell: cells[i]}
		if c.Logits {
			co.In = rec.got[leafKey{kind: 'x', p: c.P, l: L}]
			traceIdx = append(traceIdx, lay.XLeaf(L, c.P))
			logitIdx = append(logitIdx, c.Layer)
		} else {
			co.Head = heads[i]
			co.In = rec.got[leafKey{kind: 'x', p: c.P, l: c.Layer}]
			for h := 0; h < lay.KVHeads; h++ {
				co.Attn = append(co.Attn, rec.got[leafKey{kind: 'a', p: c.P, l: c.Layer, h: h}]...)
			}
			co.Out = rec.got[leafKey{kind: 'x', p: c.P, l: c.Layer + 1}]
			for p := 0; p <= c.P; p++ {
				co.KV = append(co.KV, rec.got[leafKey{kind: 'k', p: p, l: c.Layer, h: heads[i]}]...)
			}
			traceIdx = append(traceIdx, cellTraceLeaves(lay, c, heads[i])...)
		}
		o.Cells = append(o.Cells, co)
	}
	var err error
	if len(traceIdx) > 0 { // no cell is challengeable: the openings are empty (Layout.Challengeable)
		if o.TraceProof, err = t.trace.MultiProof(uniqueSorted(traceIdx)); err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
	}
	if len(logitIdx) > 0 {
		if o.LogitsProof, err = t.logits.MultiProof(uniqueSorted(logitIdx)); err != nil {
			return nil, fmt.Errorf("open: %w", err)
		}
	}
	return o, nil
}

// cellTraceLeaves lists the trace leaves a layer cell's check hashes.
func cellTraceLeaves(lay Layout, c Cell, head int) []int {
	idx := []int{lay.XLeaf(c.Layer, c.P), lay.XLeaf(c.Layer+1, c.P)}
	for h := 0; h < lay.KVHeads; h++ {
		idx = append(idx, lay.KVLeaf(c.Layer, h, c.P), lay.ALeaf(c.Layer, h, c.P))
	}
	for t := 0; t < c.P; t++ {
		idx = append(idx, lay.KVLeaf(c.Layer, head, t))
	}
	return idx
}

func uniqueSorted(xs []int) []int {
	sort.Ints(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}

func floats(b []byte, n int) ([]float32, bool) {
	if len(b) != 4*n {
		return nil, false
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, true
}

// leafSet collects leaf hashes by index, refusing two different hashes for
// one leaf.
type leafSet map[int]merkle.Hash

func (s leafSet) add(i int, h merkle.Hash) bool {
	if old, ok := s[i]; ok && old != h {
		return false
	}
	s[i] = h
	return true
}

func (s leafSet) sorted() ([]int, []merkle.Hash) {
	idx := make([]int, 0, len(s))
	for i := range s {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	hs := make([]merkle.Hash, len(idx))
	for j, i := range idx {
		hs[j] = s[i]
	}
	return idx, hs
}

// Check audits openings against a receipt and the verifier's model: the
// receipt header, that the openings answer exactly the challenge (seed, k),
// each opened cell recomputed from its committed inputs, and the Merkle
// proofs of every leaf involved. It returns nil, a *Mismatch naming the
// first failing cell, or an error for malformed openings.
func Check(m *model.Model, modelID merkle.Hash, r *receipt.Receipt, seed uint64, k int, o *Openings) error {
	c := m.Config
	if err := CheckHeader(r, modelID, c.Vocab); err != nil {
		return err
	}
	lay := NewLayout(c, len(r.Prompt), len(r.Output))
	if err := lay.check(); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	id := r.ID()
	if o.Receipt != id {
		return fmt.Errorf("audit: openings are for receipt %x, not %x", o.Receipt, id)
	}
	if o.Seed != seed {
		return fmt.Errorf("audit: openings answer challenge %d, not %d", o.Seed, seed)
	}
	if k < 1 {
		return fmt.Errorf("audit: a challenge selects at least one cell, not %d", k)
	}
	cells := lay.Select(id, seed, k)
	if len(o.Cells) != len(cells) {
		return fmt.Errorf("audit: %d cells opened, the challenge selects %d", len(o.Cells), len(cells))
	}
	cs, heads := lay.plan(id, seed, cells)
	L, D, hd := lay.Layers, c.Dim, lay.HeadDim
	// First every opening's shape, then one batched recomputation per layer
	// (and one for the classifier): cells of one layer share a single read
	// of its weights. The batched rows have the bits of single cells.
	type opened struct{ x, attn, out, kvs []float32 }
	ops := make([]opened, len(cs))
	for i, cell := range cs {
		co := o.Cells[i]
		if co.Cell != cells[i] {
			return fmt.Errorf("audit: opening %d is cell %d, the challenge selects %d", i, co.Cell, cells[i])
		}
		if cell.Logits {
			if co.Head != 0 || len(co.Attn) != 0 || len(co.Out) != 0 || len(co.KV) != 0 {
				return fmt.Errorf("audit: logits cell %d carries layer data", co.Cell)
			}
			x, ok := floats(co.In, D)
			if !ok {
				return fmt.Errorf("audit: cell %d: final state has %d bytes, want %d", co.Cell, len(co.In), 4*D)
			}
			ops[i].x = x
			continue
		}
		if co.Head != heads[i] {
			return fmt.Errorf("audit: cell %d opens head %d, the challenge selects %d", co.Cell, co.Head, heads[i])
		}
		x, ok1 := floats(co.In, D)
		attn, ok2 := floats(co.Attn, lay.QDim())
		out, ok3 := floats(co.Out, D)
		kvs, ok4 := floats(co.KV, (cell.P+1)*2*hd)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return fmt.Errorf("audit: cell %d: opened leaves have the wrong sizes (%d, %d, %d, %d bytes)", co.Cell, len(co.In), len(co.Attn), len(co.Out), len(co.KV))
		}
		ops[i] = opened{x, attn, out, kvs}
	}
	calc, err := newCalc(m, r.Spec, 0)
	if err != nil {
		return err
	}
	defer calc.close()
	type recomputed struct{ q, k, v, out, logits []float32 }
	rc := make([]recomputed, len(cs))
	byLayer := make([][]int, L+1) // cell indices per layer; L: logits cells
	for i, cell := range cs {
		if cell.Logits {
			byLayer[L] = append(byLayer[L], i)
		} else {
			byLayer[cell.Layer] = append(byLayer[cell.Layer], i)
		}
	}
	for l, is := range byLayer {
		if len(is) == 0 {
			continue
		}
		var pos []int
		var xs, attns [][]float32
		for _, i := range is {
			pos, xs, attns = append(pos, cs[i].P), append(xs, ops[i].x), append(attns, ops[i].attn)
		}
		if l == L {
			lgs, err := calc.e.LogitsRows(xs)
			if err != nil {
				return fmt.Errorf("audit: logits cells: %w", err)
			}
			for j, i := range is {
				rc[i].logits = lgs[j]
			}
			continue
		}
		qs, ks, vs, err := calc.e.QKVRows(l, pos, xs)
		if err != nil {
			return fmt.Errorf("audit: cells of layer %d: %w", l, err)
		}
		outs, err := calc.e.FinishLayerRows(l, xs, attns)
		if err != nil {
			return fmt.Errorf("audit: cells of layer %d: %w", l, err)
		}
		for j, i := range is {
			rc[i] = recomputed{q: qs[j], k: ks[j], v: vs[j], out: outs[j]}
		}
	}
	trace, logitLeaves := leafSet{}, leafSet{}
	tokenAt := func(p int) int {
		if p < len(r.Prompt) {
			return r.Prompt[p]
		}
		return r.Output[p-len(r.Prompt)]
	}
	params := SamplerParams(r)
	for i, cell := range cs {
		co, op, re := o.Cells[i], ops[i], rc[i]
		fail := func(format string, args ...any) error {
			mm := mismatch("audit", cell.P, format, args...)
			if !cell.Logits {
				mm.Layer = cell.Layer
			}
			return mm
		}
		if cell.Logits {
			if !trace.add(lay.XLeaf(L, cell.P), merkle.LeafHash(co.In)) {
				return fmt.Errorf("audit: cell %d: two different values for one leaf", co.Cell)
			}
			logitLeaves.add(cell.Layer, merkle.LeafHash(appendF32(nil, re.logits)))
			if got, want := sampler.Sample(re.logits, params, cell.P+1), r.Output[cell.Layer]; got != want {
				return fail("logits cell %d samples token %d, the receipt says %d", co.Cell, got, want)
			}
			continue
		}
		if cell.Layer == 0 {
			emb, err := calc.embed(tokenAt(cell.P))
			if err != nil {
				return fmt.Errorf("audit: cell %d: %w", co.Cell, err)
			}
			for j := range emb {
				if math.Float32bits(emb[j]) != math.Float32bits(op.x[j]) {
					return fail("the state entering layer 0 is not the embedding of token %d", tokenAt(cell.P))
				}
			}
		}
		q, kk, v := re.q, re.k, re.v
		for h := 0; h < lay.KVHeads; h++ {
			leaf := appendF32(appendF32(nil, kk[h*hd:(h+1)*hd]), v[h*hd:(h+1)*hd])
			if !trace.add(lay.KVLeaf(cell.Layer, h, cell.P), merkle.LeafHash(leaf)) {
				return fmt.Errorf("audit: cell %d: two different values for one leaf", co.Cell)
			}
		}
		// Attention of every query head that reads key/value head Head,
		// over the opened keys and values (position p's own is recomputed).
		h := co.Head
		kvs := op.kvs
		keysF := make([]float32, (cell.P+1)*hd)
		valsF := make([]float32, (cell.P+1)*hd)
		for t := 0; t <= cell.P; t++ {
			copy(keysF[t*hd:], kvs[t*2*hd:t*2*hd+hd])
			copy(valsF[t*hd:], kvs[t*2*hd+hd:(t+1)*2*hd])
			if t < cell.P {
				if !trace.add(lay.KVLeaf(cell.Layer, h, t), merkle.LeafHash(co.KV[t*8*hd:(t+1)*8*hd])) {
					return fmt.Errorf("audit: cell %d: two different values for one leaf", co.Cell)
				}
			}
		}
		// Position p's own key and value are recomputed; the opened copy
		// must agree with them.
		for j := 0; j < hd; j++ {
			if math.Float32bits(keysF[cell.P*hd+j]) != math.Float32bits(kk[h*hd+j]) ||
				math.Float32bits(valsF[cell.P*hd+j]) != math.Float32bits(v[h*hd+j]) {
				return fail("opened key/value of head %d differ from the recomputation", h)
			}
		}
		group := c.Heads / c.KVHeads
		for qh := h * group; qh < (h+1)*group; qh++ {
			a, err := calc.attend(q, qh, keysF, valsF, cell.P+1)
			if err != nil {
				return fmt.Errorf("audit: cell %d: %w", co.Cell, err)
			}
			for j := range a {
				if math.Float32bits(a[j]) != math.Float32bits(op.attn[qh*hd+j]) {
					return fail("attention output of head %d differs from the recomputation", qh)
				}
			}
		}
		for j := range re.out {
			if math.Float32bits(re.out[j]) != math.Float32bits(op.out[j]) {
				return fail("the state leaving the layer differs from the recomputation")
			}
		}
		if !trace.add(lay.XLeaf(cell.Layer, cell.P), merkle.LeafHash(co.In)) ||
			!trace.add(lay.XLeaf(cell.Layer+1, cell.P), merkle.LeafHash(co.Out)) {
			return fmt.Errorf("audit: cell %d: two different values for one leaf", co.Cell)
		}
		W := 4 * lay.AWidth()
		for h := 0; h < lay.KVHeads; h++ {
			if !trace.add(lay.ALeaf(cell.Layer, h, cell.P), merkle.LeafHash(co.Attn[h*W:(h+1)*W])) {
				return fmt.Errorf("audit: cell %d: two different values for one leaf", co.Cell)
			}
		}
	}
	idx, hs := trace.sorted()
	if len(idx) == 0 { // no cell selected (Layout.Challengeable): nothing to prove
		if len(o.TraceProof) != 0 || len(o.LogitsProof) != 0 {
			return fmt.Errorf("audit: proofs without cells")
		}
		return nil
	}
	if err := merkle.VerifyMulti(r.TraceRoot, lay.Leaves(), idx, hs, o.TraceProof); err != nil {
		return mismatch("audit", -1, "opened trace leaves do not match the receipt's trace root: %v", err)
	}
	if len(logitLeaves) > 0 {
		idx, hs := logitLeaves.sorted()
		if err := merkle.VerifyMulti(r.LogitsRoot, lay.Output, idx, hs, o.LogitsProof); err != nil {
			return mismatch("audit", cs[0].P, "recomputed logits do not match the receipt's logits root: %v", err)
		}
	} else if len(o.LogitsProof) != 0 {
		return fmt.Errorf("audit: logits proof without logits cells")
	}
	return nil
}
