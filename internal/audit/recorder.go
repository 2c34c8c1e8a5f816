package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/keys"
	"github.com/verdictnet/verdict/internal/merkle"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/receipt"
	"github.com/verdictnet/verdict/internal/sampler"
	"github.com/verdictnet/verdict/internal/sha256x16"
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
	only   map[leafKey]bool   // when set, the leaves got keeps (the others are hashed)
	err    error
	async  *asyncHasher // when set, Layer and Final hash on other goroutines
	// pending are the logit leaves LogitsAsync handed to logitHasher,
	// not yet stored in logits.
	pending []pendingLeaf
	// chatTemplate is the receipt's chat_template (zero: none).
	chatTemplate merkle.Hash
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
	if r.got != nil && (r.only == nil || r.only[k]) {
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
func (r *Recorder) leafHash(parts ...[]float32) merkle.Hash { return leafHashWith(r.h, parts...) }

// leafHashWith is leafHash computed with the SHA-256 state h (reset first).
func leafHashWith(h hash.Hash, parts ...[]float32) merkle.Hash {
	h.Reset()
	h.Write([]byte{0})
	for _, p := range parts {
		if len(p) > 0 {
			h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), 4*len(p)))
		}
	}
	var out merkle.Hash
	h.Sum(out[:0])
	return out
}

// set stores v at position p of s, extending s with zero hashes to reach
// it. A list grows to at least setMinCap positions at once: a recorder
// holds (2 * heads + 1) lists per layer, and growing each a position at a
// time cost a fifth of a 16-sequence decode's trace hashing in
// reallocations.
func set(s []merkle.Hash, p int, v merkle.Hash) []merkle.Hash {
	if n := len(s); p >= n {
		if p >= cap(s) {
			s = slices.Grow(s, max(p+1, setMinCap)-n)
		}
		s = s[:p+1]
		clear(s[n:p])
	}
	s[p] = v
	return s
}

// setMinCap is the fewest positions set allocates a list for.
const setMinCap = 64

// Layer implements engine.Tracer.
func (r *Recorder) Layer(l, pos int, x, k, v, attn []float32) {
	if l < 0 || l >= r.c.Layers || pos < 0 {
		r.err = fmt.Errorf("trace: layer %d position %d out of range", l, pos)
		return
	}
	if r.async != nil {
		r.async.layer(l, pos, x, k, v, attn)
		return
	}
	row := engine.LayerRow{Tracer: r, Pos: pos, X: x, K: k, V: v, Attn: attn}
	if r.hashesRow(l, row) {
		sc := rowScratch.Get().(*layerRowsScratch)
		sc.recs, sc.rows = append(sc.recs[:0], r), append(sc.rows[:0], row)
		sc.hash(l)
		rowScratch.Put(sc)
		return
	}
	r.x[l] = set(r.x[l], pos, r.leaf(leafKey{kind: 'x', p: pos, l: l}, x))
	hd, w := r.hd, r.c.QDim()/r.c.KVHeads
	for h := 0; h < r.c.KVHeads; h++ {
		r.kv[l][h] = set(r.kv[l][h], pos, r.leaf(leafKey{kind: 'k', p: pos, l: l, h: h}, k[h*hd:(h+1)*hd], v[h*hd:(h+1)*hd]))
		r.a[l][h] = set(r.a[l][h], pos, r.leaf(leafKey{kind: 'a', p: pos, l: l, h: h}, attn[h*w:(h+1)*w]))
	}
}

// TraceLayerRows is engine.Options.TraceLayers for Recorders: the rows
// whose Tracer is a *Recorder that hashes as it goes (not one keeping the
// trace for openings, nor one hashing on goroutines of its own) get the
// leaves Layer would give them, the key/value leaves of all those rows
// hashed in one sha256x16.Sum and their attention leaves in another (a
// row at a time fills 12 of the 16 lanes on the 110m shape; rows of the
// same recorder, one item's positions, are set in order); other rows go to
// their Tracer's Layer.
func TraceLayerRows(l int, rows []engine.LayerRow) {
	sc := rowScratch.Get().(*layerRowsScratch)
	defer rowScratch.Put(sc)
	sc.recs, sc.rows = sc.recs[:0], sc.rows[:0]
	for _, row := range rows {
		r, ok := row.Tracer.(*Recorder)
		if !ok || !r.hashesRow(l, row) || (len(sc.recs) > 0 && r.c.KVHeads != sc.recs[0].c.KVHeads) {
			row.Tracer.Layer(l, row.Pos, row.X, row.K, row.V, row.Attn)
			continue
		}
		sc.recs, sc.rows = append(sc.recs, r), append(sc.rows, row)
	}
	sc.hash(l)
}

// hashesRow reports whether r takes row of layer l through
// layerRowsScratch.hash: r hashes as it goes (it neither keeps the trace
// for openings nor hashes on goroutines of its own) and the row's vectors
// have its model's sizes.
func (r *Recorder) hashesRow(l int, row engine.LayerRow) bool {
	return r.async == nil && r.got == nil && l >= 0 && l < r.c.Layers && row.Pos >= 0 && len(row.X) == r.c.Dim &&
		len(row.K) == r.c.KVDim() && len(row.V) == len(row.K) && len(row.Attn) == r.c.QDim()
}

// hash sets the leaves of layer l of the rows sc.rows (each of the
// recorder sc.recs[i], all with the same number of key/value heads): the
// key/value leaves of every row and head in one sha256x16.Sum, the
// attention leaves in another, the layer inputs in a third; and clears sc.
func (sc *layerRowsScratch) hash(l int) {
	if len(sc.recs) == 0 {
		return
	}
	H := sc.recs[0].c.KVHeads
	n := len(sc.rows)
	sc.kv, sc.att, sc.xs = sc.kv[:0], sc.att[:0], sc.xs[:0]
	for i, row := range sc.rows {
		r := sc.recs[i]
		sc.xs = append(sc.xs, f32Bytes(row.X))
		hd, w := r.hd, r.c.QDim()/H
		for h := range H {
			sc.kv = append(sc.kv, f32Bytes(row.K[h*hd:(h+1)*hd]), f32Bytes(row.V[h*hd:(h+1)*hd]))
			sc.att = append(sc.att, f32Bytes(row.Attn[h*w:(h+1)*w]))
		}
	}
	sc.hs = slices.Grow(sc.hs[:0], 2*n*H+n)[:2*n*H+n]
	sha256x16.Sum(sc.hs[:n*H], leafPrefix, sc.kv)
	sha256x16.Sum(sc.hs[n*H:2*n*H], leafPrefix, sc.att)
	sha256x16.Sum(sc.hs[2*n*H:], leafPrefix, sc.xs)
	for i, row := range sc.rows {
		r := sc.recs[i]
		r.x[l] = set(r.x[l], row.Pos, sc.hs[2*n*H+i])
		for h := range H {
			r.kv[l][h] = set(r.kv[l][h], row.Pos, sc.hs[i*H+h])
			r.a[l][h] = set(r.a[l][h], row.Pos, sc.hs[n*H+i*H+h])
		}
	}
	clear(sc.kv)
	clear(sc.att)
	clear(sc.xs)
	clear(sc.rows)
	clear(sc.recs)
}

// layerRowsScratch is TraceLayerRows's working memory.
type layerRowsScratch struct {
	recs    []*Recorder
	rows    []engine.LayerRow
	kv, att [][]byte
	xs      [][]byte // the rows' layer inputs
	hs      []merkle.Hash
}

var rowScratch = sync.Pool{New: func() any { return new(layerRowsScratch) }}

// Final implements engine.Tracer.
func (r *Recorder) Final(pos int, x []float32) {
	if pos < 0 {
		return
	}
	L := r.c.Layers
	if r.async != nil {
		r.async.final(pos, x)
		return
	}
	r.x[L] = set(r.x[L], pos, r.leaf(leafKey{kind: 'x', p: pos, l: L}, x))
}

// Logits records the logit vector computed at position pos (pass every
// vector; those before the last prompt position are ignored).
func (r *Recorder) Logits(pos int, logits []float32) {
	j := pos - (len(r.prompt) - 1)
	if j < 0 {
		return
	}
	r.flushLogits()
	for len(r.logits) <= j {
		r.logits = append(r.logits, merkle.Hash{})
	}
	r.logits[j] = logitCombiner.leafHash(logits)
}

// LogitsAsync records what Logits records, but returns at once: the
// vector is hashed on another goroutine (logitHasher), with those of the
// other generations' recorders that hand theirs over meanwhile, while the
// caller goes on (samples its next token, and the next batch step runs).
// The caller must leave logits unchanged until Roots or Receipt, which
// wait for the hash. Calls of one recorder come from one goroutine at a
// time, as for Logits.
func (r *Recorder) LogitsAsync(pos int, logits []float32) {
	j := pos - (len(r.prompt) - 1)
	if j < 0 {
		return
	}
	req := &leafRequest{vec: logits, done: make(chan struct{})}
	r.pending = append(r.pending, pendingLeaf{j: j, req: req})
	logitHasher.add(req)
}

// pendingLeaf is a logit leaf of position index j being hashed.
type pendingLeaf struct {
	j   int
	req *leafRequest
}

// flushLogits waits for the leaves LogitsAsync handed over and stores
// them, in the order they were handed over.
func (r *Recorder) flushLogits() {
	for _, p := range r.pending {
		<-p.req.done
		for len(r.logits) <= p.j {
			r.logits = append(r.logits, merkle.Hash{})
		}
		r.logits[p.j] = p.req.leaf
	}
	clear(r.pending)
	r.pending = r.pending[:0]
}

// logitHasher hashes the logit vectors of LogitsAsync.
var logitHasher asyncLeaves

// asyncLeaves computes leaf hashes of float vectors on a goroutine of its
// own, started when a vector arrives and none is running, which hashes
// every vector queued, 16 at a time (sha256x16), until the queue is empty,
// and then ends. Before it takes the queue it yields its thread
// (runtime.Gosched) until gatherIdle yields in a row queue nothing, up to
// gatherYields times and never beyond sha256x16.Lanes vectors, so that
// the other sequences of a batch step queue theirs and the 16 lanes are
// filled; it never waits for a vector that is not on its way.
type asyncLeaves struct {
	mu    sync.Mutex
	queue []*leafRequest
	busy  bool
}

// gatherYields is the most times asyncLeaves yields for more vectors
// before it hashes those queued. A yield lets about one other goroutine
// run: with 4 yields, a 16-sequence step's logits went in batches of a
// few, under sha256x16.MinLanes, hashed one by one with crypto/sha256 (a
// third of the hashing's time, at half the multi-buffer rate).
const gatherYields = 32

// gatherIdle is how many yields in a row that queue nothing end the
// gathering.
const gatherIdle = 2

func (a *asyncLeaves) add(req *leafRequest) {
	a.mu.Lock()
	a.queue = append(a.queue, req)
	start := !a.busy
	a.busy = true
	a.mu.Unlock()
	if start {
		go a.drain()
	}
}

func (a *asyncLeaves) drain() {
	a.mu.Lock()
	for len(a.queue) > 0 {
		for i, idle, n := 0, 0, len(a.queue); i < gatherYields && idle < gatherIdle && n < sha256x16.Lanes; i++ {
			a.mu.Unlock()
			runtime.Gosched()
			a.mu.Lock()
			if len(a.queue) == n {
				idle++
				continue
			}
			idle, n = 0, len(a.queue)
		}
		batch := a.queue
		a.queue = nil
		a.mu.Unlock()
		hashRequests(batch)
		a.mu.Lock()
	}
	a.busy = false
	a.mu.Unlock()
}

// logitCombiner hashes the logit vectors of the recorders of concurrent
// generations together: the sequences of a batch step each have their own
// recorder, called by their own caller's goroutine right after the step.
var logitCombiner combiner

// combiner computes leaf hashes of float vectors handed to it by several
// goroutines at once, hashing those that meet 16 at a time (flat
// combining): a caller queues its vector and, unless another caller is
// already hashing, takes every queued vector (its own among them), hashes
// them together (sha256x16), and repeats while more were queued meanwhile;
// a caller that finds another hashing waits for its leaf. Before it takes
// the queue the hashing caller yields its thread once (runtime.Gosched),
// so that the other callers of the step that are ready to run queue their
// vectors; nobody waits for a batch to fill: a caller alone hashes its
// vector alone. Each vector stays its caller's, unchanged, and the caller
// returns with its leaf.
type combiner struct {
	mu    sync.Mutex
	queue []*leafRequest
	busy  bool
}

type leafRequest struct {
	vec  []float32
	leaf merkle.Hash
	done chan struct{} // closed once leaf is set, for a waiting caller
}

// hashRequests hashes the vectors of batch together, sets each request's
// leaf, drops its vector and closes its done.
func hashRequests(batch []*leafRequest) {
	vecs := make([][]float32, len(batch))
	leaves := make([]merkle.Hash, len(batch))
	for i, q := range batch {
		vecs[i] = q.vec
	}
	leafHashesF32(leaves, vecs)
	for i, q := range batch {
		q.leaf = leaves[i]
		q.vec = nil
		close(q.done)
	}
}

func (c *combiner) leafHash(vec []float32) merkle.Hash {
	req := &leafRequest{vec: vec, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	if c.busy {
		c.mu.Unlock()
		<-req.done
		return req.leaf
	}
	c.busy = true
	// Let the other callers of a batch step that are ready to run queue
	// their vectors first (it never waits for one that is not).
	c.mu.Unlock()
	runtime.Gosched()
	c.mu.Lock()
	for len(c.queue) > 0 {
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		hashRequests(batch)
		c.mu.Lock()
	}
	c.busy = false
	c.mu.Unlock()
	return req.leaf
}

// hashLogits records the logit vectors of positions 0, 1, ... (as Logits
// does for each), hashing them on up to threads goroutines.
func (r *Recorder) hashLogits(logits [][]float32, threads int) {
	first := len(r.prompt) - 1
	if len(logits) <= first {
		return
	}
	leaves := r.logitLeaves(len(logits) - first)
	parallel(len(leaves), hashChunk, threads, func(lo, hi int) {
		leafHashesF32(leaves[lo:hi], logits[first+lo:first+hi])
	})
}

// hashChunk is how many logit vectors a hashing goroutine takes at once:
// they are hashed together, 16 at a time (sha256x16).
const hashChunk = sha256x16.Lanes

// leafPrefix is the Merkle leaf prefix (docs/protocol.md section 1).
var leafPrefix = []byte{0}

// f32Bytes is the little-endian bytes of xs, in place (the engine's floats
// are little-endian in memory, as kernels.F32Row assumes).
func f32Bytes(xs []float32) []byte {
	if len(xs) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&xs[0])), 4*len(xs))
}

// leafHashesF32 sets out[i] to the leaf hash of vecs[i] (as leafHash),
// hashing vectors of equal length together.
func leafHashesF32(out []merkle.Hash, vecs [][]float32) {
	parts := make([][]byte, len(vecs))
	for i, v := range vecs {
		parts[i] = f32Bytes(v)
	}
	sha256x16.Sum(out[:len(vecs)], leafPrefix, parts)
}

// logitLeaves sizes the logit leaves for n output tokens and returns them,
// for the caller to fill (distinct goroutines may fill distinct leaves).
func (r *Recorder) logitLeaves(n int) []merkle.Hash {
	r.flushLogits()
	for len(r.logits) < n {
		r.logits = append(r.logits, merkle.Hash{})
	}
	return r.logits[:n]
}

// parallel runs fn(lo, hi) for consecutive ranges [lo, hi) of at most
// chunk indices that cover [0, n), on up to threads goroutines, and
// returns when all have returned.
func parallel(n, chunk, threads int, fn func(lo, hi int)) {
	chunks := (n + chunk - 1) / chunk
	threads = max(1, min(threads, chunks))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				fn(c*chunk, min(n, (c+1)*chunk))
			}
		}()
	}
	wg.Wait()
}

// hashAsync makes Layer and Final hand their leaves to `threads` hashing
// goroutines (copying the vectors, which are only valid during the call)
// for a forward pass over positions [0, positions), so that the caller's
// goroutine goes straight back to the forward pass. Call wait before
// reading any leaf. It is for a recorder that keeps no trace data, and
// pre-sizes every leaf slice so that the hashing goroutines write distinct
// elements and never a slice header.
func (r *Recorder) hashAsync(positions, threads int) {
	for l := range r.x {
		r.x[l] = make([]merkle.Hash, positions)
	}
	for l := range r.kv {
		for h := range r.kv[l] {
			r.kv[l][h] = make([]merkle.Hash, positions)
			r.a[l][h] = make([]merkle.Hash, positions)
		}
	}
	// A bounded queue: a pass that outruns the hashing waits for it, rather
	// than holding a copy of every layer's data of a long receipt.
	a := &asyncHasher{r: r, jobs: make(chan *hashJob, min(4*positions, 1<<13))}
	for range max(1, threads) {
		a.wg.Add(1)
		go a.work()
	}
	r.async = a
}

// wait returns once every leaf handed to the hashing goroutines is hashed,
// and stops them; the recorder hashes synchronously again afterwards.
func (r *Recorder) wait() {
	if r.async == nil {
		return
	}
	close(r.async.jobs)
	r.async.wg.Wait()
	r.async = nil
}

// asyncHasher hashes trace leaves on its own goroutines.
type asyncHasher struct {
	r    *Recorder
	jobs chan *hashJob
	wg   sync.WaitGroup
	free sync.Pool // *hashJob
}

// hashJob is one Layer (l < Layers) or Final (l = Layers) call's data:
// x, then for a layer attn, k and v.
type hashJob struct {
	l, pos int
	data   []float32
}

func (a *asyncHasher) job(l, pos int, parts ...[]float32) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	j, _ := a.free.Get().(*hashJob)
	if j == nil || cap(j.data) < n {
		j = &hashJob{data: make([]float32, 0, n)}
	}
	j.l, j.pos, j.data = l, pos, j.data[:0]
	for _, p := range parts {
		j.data = append(j.data, p...)
	}
	a.jobs <- j
}

func (a *asyncHasher) layer(l, pos int, x, k, v, attn []float32) {
	r := a.r
	if pos >= len(r.x[l]) || len(x) != r.c.Dim || len(attn) != r.c.QDim() || len(k) != r.c.KVDim() || len(v) != r.c.KVDim() {
		r.err = fmt.Errorf("trace: layer %d position %d does not fit the recorded pass", l, pos)
		return
	}
	a.job(l, pos, x, attn, k, v)
}

func (a *asyncHasher) final(pos int, x []float32) {
	r := a.r
	if pos >= len(r.x[r.c.Layers]) || len(x) != r.c.Dim {
		r.err = fmt.Errorf("trace: final state of position %d does not fit the recorded pass", pos)
		return
	}
	a.job(r.c.Layers, pos, x)
}

// maxBatch is the most jobs a hashing goroutine takes at once (those
// already queued; it never waits for more): the state leaves of all of
// them (all Dim floats), their key/value leaves and their attention leaves
// are each hashed together, 16 at a time (sha256x16).
const maxBatch = 16

func (a *asyncHasher) work() {
	defer a.wg.Done()
	r := a.r
	d, qd, kvd, hd, w, H := r.c.Dim, r.c.QDim(), r.c.KVDim(), r.hd, r.c.QDim()/r.c.KVHeads, r.c.KVHeads
	var (
		batch                   []*hashJob
		xParts, kvParts, aParts [][]byte
		xs, kvs, as             []merkle.Hash
	)
	for j := range a.jobs {
		batch = append(batch[:0], j)
	more:
		for len(batch) < maxBatch {
			select {
			case j, ok := <-a.jobs:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		xParts, kvParts, aParts = xParts[:0], kvParts[:0], aParts[:0]
		for _, j := range batch {
			xParts = append(xParts, f32Bytes(j.data[:d]))
			if j.l < r.c.Layers {
				attn, k, v := j.data[d:d+qd], j.data[d+qd:d+qd+kvd], j.data[d+qd+kvd:d+qd+2*kvd]
				for i := range H {
					kvParts = append(kvParts, f32Bytes(k[i*hd:(i+1)*hd]), f32Bytes(v[i*hd:(i+1)*hd]))
					aParts = append(aParts, f32Bytes(attn[i*w:(i+1)*w]))
				}
			}
		}
		xs = slices.Grow(xs[:0], len(xParts))[:len(xParts)]
		kvs = slices.Grow(kvs[:0], len(aParts))[:len(aParts)]
		as = slices.Grow(as[:0], len(aParts))[:len(aParts)]
		sha256x16.Sum(xs, leafPrefix, xParts)
		sha256x16.Sum(kvs, leafPrefix, kvParts)
		sha256x16.Sum(as, leafPrefix, aParts)
		n := 0
		for b, j := range batch {
			r.x[j.l][j.pos] = xs[b]
			if j.l < r.c.Layers {
				for i := range H {
					r.kv[j.l][i][j.pos] = kvs[n]
					r.a[j.l][i][j.pos] = as[n]
					n++
				}
			}
			a.free.Put(j)
		}
	}
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
	r.flushLogits()
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
	check := func(s []merkle.Hash, what string, l int) error {
		if len(s) < T {
			return fmt.Errorf("trace: %s of layer %d recorded for %d positions, %d needed", what, l, len(s), T)
		}
		for p, h := range s[:T] {
			if h == zero {
				return fmt.Errorf("trace: %s of layer %d position %d missing", what, l, p)
			}
		}
		return nil
	}
	add := func(s []merkle.Hash, what string, l int) error {
		if err := check(s, what, l); err != nil {
			return err
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
		// Attention leaves are position-major (Layout.ALeaf).
		for h := range r.a[l] {
			if err := check(r.a[l][h], "attention", l); err != nil {
				return nil, err
			}
		}
		for p := 0; p < T; p++ {
			for h := range r.a[l] {
				leaves = append(leaves, r.a[l][h][p])
			}
		}
	}
	return merkle.NewTree(leaves), nil
}

// SetChatTemplate records the chat-template commitment of the prompt
// (chat.Prompt.Digest) for the receipt; by default there is none.
func (r *Recorder) SetChatTemplate(d merkle.Hash) { r.chatTemplate = d }

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
		ChatTemplate: r.chatTemplate, LogitsRoot: lr, TraceRoot: tr,
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
