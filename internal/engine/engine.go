package engine

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/verdictnet/verdict/internal/detmath"
	"github.com/verdictnet/verdict/internal/hugepage"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

// SpecVersion names the version of docs/determinism.md this engine
// implements. Every commitment to a computation (model ids, receipts)
// includes it: a change to any rounding or order is a new version.
const SpecVersion = "verdict-det/2"

// SpecKV16 is SpecVersion with a half-precision key/value cache
// (docs/determinism.md, section 13): every key and value vector is rounded
// to binary16 where it is computed and cached as binary16, which halves the
// cache's memory and the bytes attention reads. Another function of the
// weights than SpecVersion's: other logits, another model id.
const SpecKV16 = SpecVersion + "+kv16"

// littleEndian reports whether this CPU stores integers and floats little
// end first, as model files do: the engine reads float32 tensors (F32
// weights, norms, biases, RoPE factors) in place (kernels.F32Row), which
// would give other values on a big-endian CPU.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

var errBigEndian = errors.New("engine: this CPU is big-endian; the engine reads model tensors in place as little-endian and runs only on little-endian CPUs (amd64, arm64, riscv64, ppc64le, ...)")

// MaxPositions is the most positions a sequence holds (NewSequence) and
// the bound of a cell's position (QKV and the other cell functions),
// whatever context length the model file states. That length is not part
// of the model's id: two files of one model may state different lengths
// (stories260K.bin 512, its GGUF conversion 128), and a verifier computes
// every position a receipt spans whichever file it holds, so that
// validators holding either agree (docs/protocol.md). Generation bounds
// its sequences by the file's context length itself (generate, the
// scheduler). Equal to receipt.MaxTokens: no receipt's token list is
// longer.
const MaxPositions = 1 << 20

// KVType is the precision of the key/value cache.
type KVType uint8

const (
	KVF32 KVType = iota // float32: SpecVersion
	KVF16               // binary16: SpecKV16
)

// String is the type's name in flags and configuration: "f32" or "f16".
func (t KVType) String() string {
	if t == KVF16 {
		return "f16"
	}
	return "f32"
}

// ParseKVType reads "f32" or "f16".
func ParseKVType(s string) (KVType, error) {
	switch s {
	case "f32":
		return KVF32, nil
	case "f16":
		return KVF16, nil
	}
	return 0, fmt.Errorf("key/value cache type %q: want f32 or f16", s)
}

// Spec is the determinism specification an engine with this cache type
// implements.
func (t KVType) Spec() string {
	if t == KVF16 {
		return SpecKV16
	}
	return SpecVersion
}

// KVTypeOf returns the cache type of a specification this engine
// implements, or an error naming the ones it does.
func KVTypeOf(spec string) (KVType, error) {
	switch spec {
	case SpecVersion:
		return KVF32, nil
	case SpecKV16:
		return KVF16, nil
	}
	return 0, fmt.Errorf("determinism spec %q: this engine implements %q and %q", spec, SpecVersion, SpecKV16)
}

// Options configure an Engine.
type Options struct {
	// Threads is the number of threads; 0 means one per CPU. It never
	// changes a result.
	Threads int
	// ChunkRows is the largest number of rows (tokens) one pass through the
	// layers takes: a longer batch runs as consecutive chunks, every layer
	// over the first chunk, then over the next, so that the activation
	// buffers are those of a chunk, not of the batch. 0 means the default:
	// 128 rows, fewer where 128 rows' activations would exceed ChunkBytes.
	// It never changes a result (a chunk is the prefill of part of a
	// prompt, whose later positions read the cache the earlier chunks
	// wrote).
	ChunkRows int
	// TraceLayers, when set, traces one layer of the rows of several
	// items in one call, in place of a Tracer.Layer call per row: it must
	// do what rows[i].Tracer.Layer(l, rows[i].Pos, rows[i].X, rows[i].K,
	// rows[i].V, rows[i].Attn) would for every i (an item's rows come in
	// position order, all in the same call). A receipt recorder hashes
	// the leaves of many rows together, filling the lanes of its
	// multi-buffer hash (audit.TraceLayerRows). It never changes a
	// result.
	TraceLayers func(l int, rows []LayerRow)
	// KV is the precision of the key/value cache, which selects the
	// specification the engine implements (Spec): KVF32 (the zero value)
	// SpecVersion, KVF16 SpecKV16.
	KV KVType
	// PagePositions is the positions of a full key/value cache page, the
	// steps in which a sequence takes memory as it grows (CacheBytes); 0
	// means 256, one block of attention. It never changes a result: the
	// layout of the cache is not part of the specification.
	PagePositions int
}

// LayerRow is one row's Tracer.Layer call (Options.TraceLayers): the
// item's Tracer, the row's position and the vectors Layer reports, which
// the engine overwrites once the call returns.
type LayerRow struct {
	Tracer        Tracer
	Pos           int
	X, K, V, Attn []float32
}

// ChunkBytes and maxChunkRows size the default chunk of rows (at least 16,
// a multiple of 16: the row tiles of the prefill kernels). The weights are
// read once per chunk: on the Llama 3.2 1B shape (Q4_K_M, one thread), a
// 256-token prefill in chunks of 128 rows costs 2% more CPU time than in
// one pass and 12 MiB less memory; in chunks of 64, 10% more
// (docs/benchmarks.md). 128 rows take 12 MiB there, 6 on Qwen3 0.6B, 10
// on the 8B shapes (80 rows).
const (
	ChunkBytes   = 16 << 20
	maxChunkRows = 128
)

// Engine runs one model. It is safe for concurrent use by several
// goroutines, each with its own Sequences.
type Engine struct {
	m    *model.Model
	c    model.Config
	pool *pool
	// states holds reusable activation buffers (*state), so that a
	// decode step allocates next to nothing.
	states sync.Pool
	hd     int
	qd     int       // Heads * hd: the width of queries and attention outputs
	freqs  []float32 // RoPE frequency of pair j of a head
	chunk  int       // rows per pass through the layers
	scale  float32   // sqrt(head dim)
	rope   func(x, cos, sin []float32)
	// traceLayers is Options.TraceLayers.
	traceLayers func(l int, rows []LayerRow)
	// spare holds the cache pages of released sequences for the next
	// sequences' caches (Sequence.Release).
	spare *kvSpare
	// page is the number of positions of a full cache page (kvPage): a
	// field so that tests can make pages small.
	page int
	// scratch holds attention working memory (*groupScratch) between
	// layers and steps.
	scratch sync.Pool
	// kv is the cache's precision (Options.KV).
	kv KVType
}

// Spec is the determinism specification the engine implements: its
// results are those of every engine with the same Spec.
func (e *Engine) Spec() string { return e.KV().Spec() }

// KV is the engine's key/value cache type.
func (e *Engine) KV() KVType { return e.kv }

// PagePositions is the positions of a full key/value cache page: the
// cache grows, and SharePrefix shares, whole pages.
func (e *Engine) PagePositions() int { return e.page }

// KVBytesPerPosition is the memory one position of a sequence's cache
// takes: the keys and values of every layer.
func (e *Engine) KVBytesPerPosition() int64 {
	per := int64(4)
	if e.kv == KVF16 {
		per = 2
	}
	return 2 * int64(e.c.Layers) * int64(e.c.KVDim()) * per
}

// CacheBytes is the key/value cache a sequence with room for maxPos
// positions (NewSequence) holds once positions 0..n-1 have been fed: its
// pages hold them, a full page at a time but the last, which ends at
// maxPos. It is Sequence.Bytes after such a feed, and maxPos times
// KVBytesPerPosition once all are.
func (e *Engine) CacheBytes(maxPos, n int) int64 {
	if n <= 0 || maxPos <= 0 {
		return 0
	}
	pages := (min(n, maxPos) + e.page - 1) / e.page
	return int64(min(pages*e.page, maxPos)) * e.KVBytesPerPosition()
}

// New returns an engine for m, which must have passed m.Check.
func New(m *model.Model, opts Options) (*Engine, error) {
	if !littleEndian {
		return nil, errBigEndian
	}
	if err := m.Check(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	c := m.Config
	e := &Engine{m: m, c: c, pool: newPool(opts.Threads), hd: c.HeadDim(), qd: c.QDim(), rope: kernels.Rope, spare: &kvSpare{}, page: kvPagePositions}
	e.freqs = RopeFreqs(c.RopeTheta, e.hd)
	if c.FreqFactors {
		DivideFreqs(e.freqs, kernels.F32Row(m.RopeFreqs.Data))
	}
	if c.Rope() == model.RopeNeox {
		e.rope = kernels.RopeNeox
	}
	e.scale = detmath.Sqrt32(float32(e.hd))
	e.traceLayers = opts.TraceLayers
	if opts.KV != KVF32 && opts.KV != KVF16 {
		return nil, fmt.Errorf("engine: key/value cache type %d unknown", opts.KV)
	}
	e.kv = opts.KV
	if opts.PagePositions < 0 {
		return nil, fmt.Errorf("engine: %d positions a cache page", opts.PagePositions)
	}
	if opts.PagePositions > 0 {
		e.page = opts.PagePositions
	}
	e.chunk = opts.ChunkRows
	if e.chunk <= 0 {
		e.chunk = chunkRows(c, fewRowsPack(m), ChunkBytes)
	}
	return e, nil
}

// chunkRows is the number of rows whose activation buffers (state and the
// quantised activations of its widest matrix input, and when pack, those
// activations packed for the few-row tiles too) fit in budget bytes,
// rounded down to a multiple of 16, at least 16.
func chunkRows(c model.Config, pack [2]int, budget int) int {
	w := max(c.Dim, c.QDim(), c.Hidden)
	perRow := 4*stateFloats(c) + 2*w + (w*pack[0]+pack[1]-1)/pack[1]
	return min(maxChunkRows, max(16, budget/perRow/16*16))
}

// ChunkRows is the number of rows one pass through the layers takes.
func (e *Engine) ChunkRows() int { return e.chunk }

// Close stops the engine's threads. The model stays open.
func (e *Engine) Close() { e.pool.close() }

// Idle tells the engine that no forward pass follows at once (the caller
// has other work first, such as sampling the next tokens of a batch): its
// threads sleep instead of polling for the next pass, leaving the CPU to
// that work. It never changes a result; the next Forward wakes them.
func (e *Engine) Idle() { e.pool.park() }

// Soon tells the engine that the next Forward follows within d (the caller
// has a little work first, such as one sequence's sampling): its idle
// threads poll for it until then instead of sleeping, so that the pass
// does not begin by waking them through the operating system (on the
// 2-core VM a median 120 µs, a tenth of the time over 0.6 ms). It never
// changes a result; Idle ends it.
func (e *Engine) Soon(d time.Duration) { e.pool.warm(d) }

// Model returns the engine's model.
func (e *Engine) Model() *model.Model { return e.m }

// Threads returns the number of threads the engine uses.
func (e *Engine) Threads() int { return e.pool.n }

// RopeFreqs returns the RoPE frequency of each pair j < headDim/2:
// float32(Pow64(theta, -2j/headDim)).
func RopeFreqs(theta float32, headDim int) []float32 {
	f := make([]float32, headDim/2)
	for j := range f {
		f[j] = float32(detmath.Pow64(float64(theta), -float64(2*j)/float64(headDim)))
	}
	return f
}

// DivideFreqs divides each RoPE frequency by its factor (the tensor
// rope_freqs.weight of Llama 3.x files): freqs[j] = float32(freqs[j] /
// factors[j]), one correctly rounded f32 division.
func DivideFreqs(freqs, factors []float32) {
	for j := range freqs {
		freqs[j] = freqs[j] / factors[j]
	}
}

// RopeAngles writes cos and sin of the RoPE angle of each pair at position
// pos: angle_j = float64(pos) * float64(freqs[j]) (exact), rounded to
// float32 after SinCos64.
func RopeAngles(freqs []float32, pos int, cos, sin []float32) {
	for j, f := range freqs {
		s, c := detmath.SinCos64(float64(pos) * float64(f))
		cos[j], sin[j] = float32(c), float32(s)
	}
}

// Sequence is the state of one token sequence: its key/value cache and the
// next position to fill.
//
// The cache of a layer is a list of pages (kvPage), page i holding
// positions [i*page, i*page+n) head-major: the keys of key/value head g at
// those positions are one contiguous run of n*hd floats, and so are its
// values. A sequence grows by adding pages, never by copying the positions
// it holds; attention walks a head's keys and values as a few long runs
// instead of one vector every kvDim floats. The layout is not part of the
// specification (docs/determinism.md): only the order of each sum is.
type Sequence struct {
	Pos      int
	cap      int
	heads    int        // key/value heads
	hd       int        // head size
	page     int        // positions of a full page
	pages    [][]kvPage // per layer, the pages of positions 0, page, 2*page, ...
	spare    *kvSpare   // the engine's released pages
	f16      bool       // binary16 pages (Options.KV)
	released bool
	// shares is set (under pageRefs) once SharePrefix gave any of its
	// pages to another sequence or took another's: reserve then copies a
	// shared page before a Forward writes into it.
	shares bool
}

// kvPagePositions is the number of positions of a full cache page: one
// block of attention (attendBlock); 1 MiB per layer on the Llama 3.2 1B
// shape (8 key/value heads of 64).
const kvPagePositions = 256

// kvPage holds n consecutive positions of one layer's cache: the keys,
// [head][n][hd], then the values, [head][n][hd], in one buffer of float32
// values, or of binary16 values (a binary16 cache: the buffer holds two
// per float32, halves). Every page of a sequence has the sequence's full
// page size of positions but the last, which ends at the sequence's cap.
type kvPage struct {
	buf []float32
	n   int
	// refs counts the sequences that hold buf, once SharePrefix has
	// shared it (nil: only this one); guarded by pageRefs. The last to
	// let go of it hands it to the engine's spare pages.
	refs *int
}

// pageRefs guards the reference counts of shared cache pages
// (kvPage.refs) and Sequence.shares.
var pageRefs sync.Mutex

// keys returns the keys of key/value head g (hd floats each): n*hd floats.
func (p *kvPage) keys(g, hd int) []float32 { return p.buf[g*p.n*hd : (g+1)*p.n*hd] }

// values returns the values of key/value head g of heads: n*hd floats.
func (p *kvPage) values(g, heads, hd int) []float32 {
	o := heads * p.n * hd
	return p.buf[o+g*p.n*hd : o+(g+1)*p.n*hd]
}

// halves returns a binary16 page's buffer as its binary16 values.
func (p *kvPage) halves() []uint16 {
	if len(p.buf) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&p.buf[0])), 2*len(p.buf))
}

// keys16 and values16 are keys and values for a binary16 page.
func (p *kvPage) keys16(g, hd int) []uint16 { return p.halves()[g*p.n*hd : (g+1)*p.n*hd] }

func (p *kvPage) values16(g, heads, hd int) []uint16 {
	o := heads * p.n * hd
	return p.halves()[o+g*p.n*hd : o+(g+1)*p.n*hd]
}

// raw16 returns the float32 words of a binary16 page that hold head g's
// keys (values: its values), for prefetching (hd is even: a head's run of
// n*hd halves is n*hd/2 whole words).
func (p *kvPage) raw16(g, heads, hd int, values bool) []float32 {
	o := 0
	if values {
		o = heads * p.n * hd
	}
	return p.buf[(o+g*p.n*hd)/2 : (o+(g+1)*p.n*hd)/2]
}

// NewSequence returns an empty sequence with room for maxPos positions
// (0 means the model's context length). maxPos may exceed that length, up
// to MaxPositions: a receipt's replay computes every position it spans.
func (e *Engine) NewSequence(maxPos int) (*Sequence, error) {
	if maxPos <= 0 {
		maxPos = e.c.ContextLen
	}
	if maxPos > MaxPositions {
		return nil, fmt.Errorf("sequence of %d positions exceeds the engine's limit of %d", maxPos, MaxPositions)
	}
	// The cache grows a page at a time as positions are fed (reserve), so
	// that a sequence allowed the whole context of a long-context model
	// (131072 positions of Llama 3.x: 8.6 GB for the 1B shape) costs only
	// what it uses.
	s := &Sequence{cap: maxPos, heads: e.c.KVHeads, hd: e.hd, page: e.page, pages: make([][]kvPage, e.c.Layers), spare: e.spare, f16: e.kv == KVF16}
	// A sequence its caller drops without Release hands its pages back
	// once collected, as Release would: the engine counts the pages of
	// each slab handed out (kvSpare), and a page never handed back would
	// keep its slab from being given up. Its shared pages (SharePrefix)
	// count one holder fewer; the last holder hands them back. Release
	// empties the layers' list, so that the pages go back once.
	spare := e.spare
	runtime.AddCleanup(s, func(layers [][]kvPage) {
		dropShared(layers)
		spare.put(layers)
	}, s.pages)
	return s, nil
}

// Release hands the sequence's key/value cache pages to its engine for the
// caches of later sequences, and ends the sequence: a Forward with it
// fails. A caller that is done with a sequence (a finished generation)
// releases it so that the next sequence reuses the memory at once instead
// of allocating more while the collector has not yet freed it (a prefill
// of 256 tokens followed by a new sequence held both caches: 9-15 MiB of
// peak resident memory on Qwen3 0.6B, docs/benchmarks.md). The engine
// keeps at most as many floats of pages as its sequences held at once
// (counted at each release: the pages of live sequences and of the one
// released), or the largest sequence released, if more; others are left to
// the collector. A burst of sequences that end together (a batch of
// streams) so leaves its pages to the next burst: no new allocation, no
// page faults, no collection of the old ones. Release is idempotent; it
// must not run concurrently with a Forward of the sequence.
func (s *Sequence) Release() {
	if s.released {
		return
	}
	s.released = true
	if s.shares {
		dropShared(s.pages)
	}
	s.spare.put(s.pages)
	clear(s.pages) // nothing left for the cleanup of NewSequence
	s.pages = nil
}

// dropShared lets go of the shared pages among a sequence's pages: each
// one's count of holders falls by one, and one that others still hold is
// taken out of pages (the last holder keeps it, to hand back).
func dropShared(pages [][]kvPage) {
	pageRefs.Lock()
	defer pageRefs.Unlock()
	for _, ps := range pages {
		for i := range ps {
			if r := ps[i].refs; r != nil {
				*r--
				if *r > 0 {
					ps[i] = kvPage{}
				}
			}
		}
	}
}

// kvSpare holds the cache pages of released sequences, and carves new
// large pages from slabs in huge pages.
type kvSpare struct {
	mu    sync.Mutex
	bufs  [][]float32
	kept  int // floats in bufs
	limit int // floats kept at most (but slabs' pages): see Sequence.Release
	live  int // floats handed out (get) and not yet released (put)
	// slabs are the slabs with a page handed out or kept, by address;
	// cur is the one new pages are carved from, rest what is left of it.
	slabs []*kvSlab
	cur   *kvSlab
	rest  []float32
	// Floats of the pages handed out (get): taken from released
	// sequences' pages, or newly allocated.
	reused, allocated atomic.Int64
}

// kvSlab is a slab of memory, mostly in huge pages, that large cache pages
// are carved from (kvSpare.newPageLocked).
type kvSlab struct {
	mem    []float32 // all of it
	lo, hi uintptr   // its addresses: [lo, hi)
	out    int       // its pages handed out (get) and not yet back (put)
}

// KVStats counts the key/value cache the engine's sequences took since
// its start, in bytes: Reused from released sequences (Sequence.Release),
// Allocated anew. The cache grows a page (kvPage) at a time; both count
// whole pages.
type KVStats struct {
	Reused, Allocated int64
}

// KVStats returns the engine's cache counters.
func (e *Engine) KVStats() KVStats {
	return KVStats{Reused: 4 * e.spare.reused.Load(), Allocated: 4 * e.spare.allocated.Load()}
}

// put keeps the buffers of a released sequence's pages while there is
// room, for later gets (none in a nil kvSpare). A page carved from a slab
// is always kept: left to the collector, it would hold no memory of its
// own back but keep the slab's other pages from being reused there. A
// slab whose pages are all back is given up, its pages with it, while the
// pages kept are more than the limit.
func (p *kvSpare) put(pages [][]kvPage) {
	if p == nil {
		return
	}
	total := 0
	for _, ps := range pages {
		for _, pg := range ps {
			total += cap(pg.buf)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limit = max(p.limit, total, p.live)
	p.live = max(p.live-total, 0)
	for _, ps := range pages {
		for _, pg := range ps {
			c := cap(pg.buf)
			if c == 0 {
				continue
			}
			sl := p.slabOf(pg.buf)
			if sl != nil {
				sl.out--
			}
			if sl != nil || p.kept+c <= p.limit {
				p.bufs = append(p.bufs, pg.buf[:0])
				p.kept += c
			}
		}
	}
	if p.kept > p.limit {
		p.freeSlabsLocked()
	}
}

// freeSlabsLocked gives up slabs (not the one pages are carved from) whose
// pages are all kept, until the pages kept are no more than the limit.
func (p *kvSpare) freeSlabsLocked() {
	var free []*kvSlab
	for _, sl := range p.slabs {
		if sl.out == 0 && sl != p.cur {
			free = append(free, sl)
		}
	}
	for _, f := range free {
		if p.kept <= p.limit {
			return
		}
		bufs := p.bufs[:0]
		for _, b := range p.bufs {
			if p.slabOf(b) == f {
				p.kept -= cap(b)
			} else {
				bufs = append(bufs, b)
			}
		}
		clear(p.bufs[len(bufs):])
		p.bufs = bufs
		p.slabs = slices.DeleteFunc(p.slabs, func(sl *kvSlab) bool { return sl == f })
	}
}

// slabOf returns the slab b was carved from, or nil.
func (p *kvSpare) slabOf(b []float32) *kvSlab {
	if cap(b) == 0 {
		return nil
	}
	a := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	i, _ := slices.BinarySearchFunc(p.slabs, a, func(sl *kvSlab, a uintptr) int {
		switch {
		case sl.hi <= a:
			return -1
		case sl.lo > a:
			return 1
		}
		return 0
	})
	if i < len(p.slabs) && p.slabs[i].lo <= a && a < p.slabs[i].hi {
		return p.slabs[i]
	}
	return nil
}

// get returns a zeroed buffer of n floats from the released ones (the
// smallest whose capacity suffices), or one newly allocated (always, from
// a nil kvSpare).
func (p *kvSpare) get(n int) []float32 {
	if p == nil {
		return make([]float32, n)
	}
	p.mu.Lock()
	best := -1
	for i, b := range p.bufs {
		if cap(b) >= n && (best < 0 || cap(b) < cap(p.bufs[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := p.bufs[best][:n]
		p.live += cap(b)
		p.kept -= cap(b)
		last := len(p.bufs) - 1
		p.bufs[best], p.bufs[last] = p.bufs[last], nil
		p.bufs = p.bufs[:last]
		if sl := p.slabOf(b); sl != nil {
			sl.out++
		}
		p.mu.Unlock()
		p.reused.Add(int64(n))
		clear(b) // as a new buffer: no state of another sequence survives
		return b
	}
	p.live += n // capacity n
	b := p.newPageLocked(n)
	p.mu.Unlock()
	p.allocated.Add(int64(n))
	return b
}

// kvSlabMin is the smallest page (bytes) newPageLocked carves from a slab
// (a variable so that tests can carve a small model's pages).
var kvSlabMin = 64 << 10

// kvSlabBytes is the size of a slab (a larger page has its own), but the
// engine's first slabs: 1 MiB, then twice the one before, so that an
// engine that holds one short sequence (a verifier's replay) takes little
// more than its pages.
const kvSlabBytes = 16 << 20

// newPageLocked returns a new zeroed page of n floats (capacity n). A
// large one is carved from a slab whose memory is in huge pages
// (internal/hugepage: all of a slab but its first and last 2 MiB at most),
// the pages side by side: a decode step of many sequences reads every
// sequence's cache in short runs, and with 4 KiB pages most runs began
// with a TLB miss and a page walk (attention took 2.4-2.5 ms of a
// 16-sequence step of the 110m Q8_0 shape with the slabs, 3.1-3.4 ms
// without: docs/benchmarks.md, session 20). What is not yet carved of the
// last slab is memory the engine holds beyond its pages (untouched, not
// resident).
func (p *kvSpare) newPageLocked(n int) []float32 {
	if 4*n < kvSlabMin {
		return make([]float32, n)
	}
	if len(p.rest) < n {
		size := kvSlabBytes / 4 / 16 // floats
		if p.cur != nil {
			size = min(2*len(p.cur.mem), kvSlabBytes/4)
		}
		mem := hugepage.Floats(max(n, size))
		lo := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
		sl := &kvSlab{mem: mem, lo: lo, hi: lo + 4*uintptr(len(mem))}
		i, _ := slices.BinarySearchFunc(p.slabs, lo, func(s *kvSlab, lo uintptr) int { return cmp.Compare(s.lo, lo) })
		p.slabs = slices.Insert(p.slabs, i, sl)
		p.cur, p.rest = sl, mem
	}
	b := p.rest[:n:n]
	p.rest = p.rest[min((n+15)&^15, len(p.rest)):] // the next page on a cache line
	p.cur.out++
	return b
}

// reserve makes room in the cache for positions 0..n-1 (n <= cap).
func (s *Sequence) reserve(n int) {
	if s.shares {
		s.unshareFrom(s.Pos)
	}
	for l := range s.pages {
		s.reserveLayer(l, n)
	}
}

// reserveLayer adds to layer l's cache the pages that hold positions
// 0..n-1 (n <= cap): page i of min(page, cap-i*page) positions.
func (s *Sequence) reserveLayer(l, n int) {
	for i := len(s.pages[l]); i*s.page < n; i++ {
		m := min(s.page, s.cap-i*s.page)
		words := 2 * s.heads * m * s.hd
		if s.f16 {
			words /= 2 // two binary16 values a word
		}
		s.pages[l] = append(s.pages[l], kvPage{buf: s.spare.get(words), n: m})
	}
}

// unshareFrom gives s its own copy of every page it shares with another
// sequence (SharePrefix) that holds position pos or a later one: the
// positions a Forward writes. The scheduler never feeds a shared page
// (a prefix it took stays below the positions it feeds); this keeps any
// other caller from writing into another sequence's cache.
func (s *Sequence) unshareFrom(pos int) {
	pageRefs.Lock()
	defer pageRefs.Unlock()
	for l, ps := range s.pages {
		for i := pos / s.page; i < len(ps); i++ {
			if r := ps[i].refs; r != nil && *r > 1 {
				buf := s.spare.get(len(ps[i].buf))
				copy(buf, ps[i].buf)
				*r--
				ps[i] = kvPage{buf: buf, n: ps[i].n}
			}
		}
		s.pages[l] = ps
	}
}

// store writes the key and value vectors (all heads, kvDim floats each)
// of layer l at position pos into the cache.
func (s *Sequence) store(l, pos int, k, v []float32) {
	hd := s.hd
	for g := 0; g < s.heads; g++ {
		s.storeHead(l, pos, g, k[g*hd:(g+1)*hd], v[g*hd:(g+1)*hd])
	}
}

// storeHead writes key/value head g's key and value vectors (hd floats
// each) of layer l at position pos into the cache: store, one head. A
// binary16 cache stores them converted (kernels.F32sToF16: exact on the
// rounded vectors of Forward).
func (s *Sequence) storeHead(l, pos, g int, k, v []float32) {
	p := &s.pages[l][pos/s.page]
	i, hd := pos%s.page, s.hd
	if s.f16 {
		kernels.F32sToF16(p.keys16(g, hd)[i*hd:(i+1)*hd], k)
		kernels.F32sToF16(p.values16(g, s.heads, hd)[i*hd:(i+1)*hd], v)
		return
	}
	copy(p.keys(g, hd)[i*hd:(i+1)*hd], k)
	copy(p.values(g, s.heads, hd)[i*hd:(i+1)*hd], v)
}

// CopyPrefix makes s, a sequence nothing has been fed to, hold the keys
// and values of src's first m positions, and sets s.Pos to m: the state
// feeding src's first m tokens to s would leave. Every value is copied bit
// for bit, and a position's keys and values depend only on the tokens up
// to it (whatever was fed with them, in whatever chunks), so what s
// computes next is what it would compute had it been fed those tokens. A
// prompt that starts with a finished generation's tokens so skips their
// prefill. s and src must come from the same engine (the same cache
// layout); src may be used by other copies at the same time, not by a
// Forward.
func (s *Sequence) CopyPrefix(src *Sequence, m int) error {
	if err := s.checkPrefix(src, m); err != nil {
		return fmt.Errorf("copying a cache prefix: %w", err)
	}
	s.copyFrom(src, 0, m)
	s.Pos = m
	return nil
}

// SharePrefix is CopyPrefix without the copy of src's whole pages: s
// takes the pages that hold only positions below m (positions 0 to
// m/page*page-1) as they are, shared with src, and copies the rest. It
// returns the bytes of the pages it shares. A shared page is never
// written: a Forward that would write into one (s or src fed at a
// position below the shared ones' end: Pos set back) first gives its
// sequence a copy of its own; the last sequence that holds a page hands
// it back to the engine (Release). The scheduler's prefix cache shares
// a cached prefix's pages with every prompt that starts with it (a
// system prompt and its tools, 16 callers: its cache held once instead
// of 16 times). The same rules as CopyPrefix: src may be used by other
// copies and shares at the same time, not by a Forward.
func (s *Sequence) SharePrefix(src *Sequence, m int) (int64, error) {
	if err := s.checkPrefix(src, m); err != nil {
		return 0, fmt.Errorf("sharing a cache prefix: %w", err)
	}
	full := m / s.page
	var shared int64
	if full > 0 {
		pageRefs.Lock()
		for l := range s.pages {
			for i := 0; i < full; i++ {
				p := &src.pages[l][i]
				if p.refs == nil {
					p.refs = new(int)
					*p.refs = 1
				}
				*p.refs++
				s.pages[l] = append(s.pages[l], *p)
				shared += 4 * int64(len(p.buf))
			}
		}
		s.shares, src.shares = true, true
		pageRefs.Unlock()
	}
	s.copyFrom(src, full*s.page, m)
	s.Pos = m
	return shared, nil
}

// checkPrefix checks that s, src and m are fit for CopyPrefix and
// SharePrefix.
func (s *Sequence) checkPrefix(src *Sequence, m int) error {
	switch {
	case s.released || src.released:
		return errors.New("sequence released")
	case s.Pos != 0:
		return fmt.Errorf("the sequence already holds %d positions", s.Pos)
	case len(s.pages) > 0 && len(s.pages[0]) > 0:
		// Pos set back to 0 after a feed (or a share): its pages, maybe
		// shared, stay in place, and a copy would write into them.
		return errors.New("the sequence already holds cache pages")
	case m < 0 || m > src.Pos:
		return fmt.Errorf("%d positions asked, the source holds %d", m, src.Pos)
	case m > s.cap:
		return fmt.Errorf("%d positions exceed the sequence's %d", m, s.cap)
	case s.heads != src.heads || s.hd != src.hd || s.page != src.page || s.f16 != src.f16 || len(s.pages) != len(src.pages):
		return errors.New("the sequences' caches differ in shape")
	}
	return nil
}

// copyFrom copies src's keys and values of positions [from, m) into s,
// adding s's pages up to m (those below from s already holds, maybe
// shared: not reserve, which would copy them).
func (s *Sequence) copyFrom(src *Sequence, from, m int) {
	if from >= m {
		return
	}
	for l := range s.pages {
		s.reserveLayer(l, m)
	}
	hd := s.hd
	for l := range s.pages {
		for i := from / s.page; i*s.page < m; i++ {
			a := max(from-i*s.page, 0)   // first position of page i to copy
			b := min(m-i*s.page, s.page) // positions of page i up to m
			d, f := &s.pages[l][i], &src.pages[l][i]
			for g := 0; g < s.heads; g++ {
				if s.f16 {
					copy(d.keys16(g, hd)[a*hd:b*hd], f.keys16(g, hd)[a*hd:b*hd])
					copy(d.values16(g, s.heads, hd)[a*hd:b*hd], f.values16(g, s.heads, hd)[a*hd:b*hd])
					continue
				}
				copy(d.keys(g, hd)[a*hd:b*hd], f.keys(g, hd)[a*hd:b*hd])
				copy(d.values(g, s.heads, hd)[a*hd:b*hd], f.values(g, s.heads, hd)[a*hd:b*hd])
			}
		}
	}
}

// Bytes is the memory the sequence's key/value cache holds now (whole
// pages, as the cache grows), the pages it shares with other sequences
// (SharePrefix) included.
func (s *Sequence) Bytes() int64 {
	var n int64
	for _, ps := range s.pages {
		for i := range ps {
			// The length alone: a page's refs are another sequence's to
			// set (SharePrefix, under pageRefs) while this one is read.
			n += 4 * int64(len(ps[i].buf))
		}
	}
	return n
}

// Cap is the number of positions the sequence can hold.
func (s *Sequence) Cap() int { return s.cap }

// KV returns copies of the cached key and value vectors (all key/value
// heads, KVDim floats each) of layer l at position pos, which must have
// been fed.
func (s *Sequence) KV(l, pos int) (k, v []float32) {
	p := &s.pages[l][pos/s.page]
	i, hd := pos%s.page, s.hd
	k, v = make([]float32, s.heads*hd), make([]float32, s.heads*hd)
	for g := 0; g < s.heads; g++ {
		if s.f16 {
			kernels.F16sToF32(k[g*hd:(g+1)*hd], p.keys16(g, hd)[i*hd:(i+1)*hd])
			kernels.F16sToF32(v[g*hd:(g+1)*hd], p.values16(g, s.heads, hd)[i*hd:(i+1)*hd])
			continue
		}
		copy(k[g*hd:(g+1)*hd], p.keys(g, hd)[i*hd:(i+1)*hd])
		copy(v[g*hd:(g+1)*hd], p.values(g, s.heads, hd)[i*hd:(i+1)*hd])
	}
	return k, v
}

// LogitsMode selects which positions of an Item return logits.
type LogitsMode int

const (
	LogitsLast LogitsMode = iota // the last position only
	LogitsAll                    // every position
	LogitsNone                   // none
)

// Tracer observes the intermediate states of a forward pass. Slices are only
// valid during the call.
type Tracer interface {
	// Layer reports, for layer l at position pos: x, the hidden state
	// entering the layer; k and v, the key (after RoPE) and value vectors
	// the position writes into the cache; attn, the attention output of
	// all heads before the output projection.
	Layer(l, pos int, x, k, v, attn []float32)
	// Final reports the hidden state after the last layer, before the
	// output norm.
	Final(pos int, x []float32)
}

// Forward calls each item's Tracer in position order (every layer, then
// Final, for the item's rows of one chunk of ChunkRows rows, then for the
// next chunk's) on one goroutine at a time; the Tracers of different items
// of a batch may be called at the same time, from different goroutines (a
// Tracer shared by several items of one batch must be safe for that).

// Item is one sequence's share of a forward pass: Tokens are fed at
// positions Seq.Pos, Seq.Pos+1, ...; afterwards Seq.Pos has advanced.
type Item struct {
	Seq    *Sequence
	Tokens []int
	Logits LogitsMode
	// LogitsFrom, with LogitsAll, is the index into Tokens of the first
	// position that returns logits: the classifier, the largest matrix of
	// a small model, is skipped at the positions before it (a long prompt
	// whose own logits nobody reads).
	LogitsFrom int
	Trace      Tracer // optional
	// Out receives the logits: len(Tokens)-LogitsFrom vectors for
	// LogitsAll, one for LogitsLast, none for LogitsNone.
	Out [][]float32
}

// ErrContext is returned when tokens do not fit in a sequence.
var ErrContext = errors.New("sequence is full")

// row locates one token of a batch.
type row struct {
	item *Item
	seq  *Sequence
	tok  int
	pos  int
	i    int // index into item.Tokens
}

// Forward runs the model over every item's tokens as one batch. Every
// position's logits are the same bits as when the tokens are fed one at a
// time, alone or in any other batch.
func (e *Engine) Forward(items ...*Item) error {
	var rows []row
	for _, it := range items {
		if it.Seq == nil {
			return errors.New("engine: item without a sequence")
		}
		if it.Seq.released {
			return errors.New("engine: item with a released sequence")
		}
		if it.LogitsFrom < 0 || (it.LogitsFrom > 0 && (it.Logits != LogitsAll || it.LogitsFrom >= len(it.Tokens))) {
			return fmt.Errorf("engine: logits from token %d of %d (mode %d)", it.LogitsFrom, len(it.Tokens), it.Logits)
		}
		if it.Seq.Pos+len(it.Tokens) > it.Seq.cap {
			return fmt.Errorf("engine: %d tokens at position %d: %w (room for %d)", len(it.Tokens), it.Seq.Pos, ErrContext, it.Seq.cap)
		}
		for i, t := range it.Tokens {
			if t < 0 || t >= e.c.Vocab {
				return fmt.Errorf("engine: token id %d out of range [0, %d)", t, e.c.Vocab)
			}
			rows = append(rows, row{item: it, seq: it.Seq, tok: t, pos: it.Seq.Pos + i, i: i})
		}
	}
	for i, a := range items {
		for _, b := range items[:i] {
			if a.Seq == b.Seq {
				return errors.New("engine: a sequence appears twice in one batch")
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	defer e.pool.hold()()
	for _, it := range items {
		it.Seq.reserve(it.Seq.Pos + len(it.Tokens))
		it.Out = it.Out[:0]
	}
	// Chunks of rows, each through every layer: a row's attention reads
	// cache positions that an earlier chunk, or this chunk's own key and
	// value step, wrote.
	logits := false
	for lo := 0; lo < len(rows); lo += e.chunk {
		st := e.newState(rows[lo:min(lo+e.chunk, len(rows))])
		for r := range st.rows {
			kernels.DequantRow(e.m.TokenEmbd, st.rows[r].tok, st.x[r*e.c.Dim:(r+1)*e.c.Dim])
		}
		for l := range e.m.Layers {
			e.layer(l, st)
		}
		logits = e.finish(st) || logits
		e.putState(st)
	}
	for _, it := range items {
		if !logits {
			it.Out = nil
		}
		it.Seq.Pos += len(it.Tokens)
	}
	return nil
}

// state holds the activations of a batch of n rows. Buffers that are never
// live at once share memory: q, k, v and att (the attention half of a
// layer) lie in u, which the feed-forward half then uses for the up
// projection (hb2) and the down projection's output; the output
// projection writes into hb before the feed-forward block needs it.
type state struct {
	rows                []row
	n                   int
	x, xb, q, k, v, att []float32
	hb, hb2             []float32
	u                   []float32 // backs q, k, v, att and hb2
	cos, sin            []float32 // RoPE of each row: HeadDim/2 each
	acts                kernels.Acts
	// traced holds the row ranges of the items with a Tracer.
	traced []span
	// oneRowEach: every row is the only one of its item (sequence) in
	// the chunk.
	oneRowEach bool
}

// fewRowsPack is the largest kernels.FewRowsPackBytes of m's matrices, as
// {num, den}.
func fewRowsPack(m *model.Model) [2]int {
	best := [2]int{0, 1}
	for _, t := range m.Tensors() {
		if num, den := kernels.FewRowsPackBytes(t.Type); num*best[1] > best[0]*den {
			best = [2]int{num, den}
		}
	}
	return best
}

// stateFloats is the number of floats a state holds per row.
func stateFloats(c model.Config) int {
	return 2*c.Dim + max(c.Hidden, c.Dim) + max(2*c.QDim()+2*c.KVDim(), c.Hidden, c.Dim) + c.HeadDim()
}

// span is the rows [lo, hi) of one item.
type span struct{ lo, hi int }

func (e *Engine) newState(rows []row) *state {
	st, _ := e.states.Get().(*state)
	if st == nil {
		st = new(state)
	}
	n := len(rows)
	c := e.c
	st.rows, st.n = rows, n
	st.oneRowEach = true
	for r := 1; r < n; r++ {
		if rows[r].item == rows[r-1].item {
			st.oneRowEach = false
			break
		}
	}
	qd, kv := c.QDim(), c.KVDim()
	st.x, st.xb = grow(st.x, n*c.Dim), grow(st.xb, n*c.Dim)
	st.hb = grow(st.hb, n*max(c.Hidden, c.Dim))
	st.u = grow(st.u, n*max(2*qd+2*kv, c.Hidden, c.Dim))
	st.q, st.k, st.v, st.att = st.u[:n*qd], st.u[n*qd:n*(qd+kv)], st.u[n*(qd+kv):n*(qd+2*kv)], st.u[n*(qd+2*kv):n*(2*qd+2*kv)]
	st.hb2 = st.u[:n*c.Hidden]
	// Every layer rotates a row by the same angles: computed once per
	// chunk.
	half := e.hd / 2
	st.cos, st.sin = grow(st.cos, n*half), grow(st.sin, n*half)
	e.pool.run(n, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			RopeAngles(e.freqs, rows[r].pos, st.cos[r*half:(r+1)*half], st.sin[r*half:(r+1)*half])
		}
	})
	// The rows of one item are consecutive; those of an item with a
	// Tracer form one span of this chunk.
	for r := 0; r < n; {
		it, hi := rows[r].item, r+1
		for hi < n && rows[hi].item == it {
			hi++
		}
		if it != nil && it.Trace != nil {
			st.traced = append(st.traced, span{r, hi})
		}
		r = hi
	}
	return st
}

// putState returns a state's buffers for reuse by a later Forward.
func (e *Engine) putState(st *state) {
	st.rows, st.traced = nil, st.traced[:0]
	e.states.Put(st)
}

// grow returns s resized to n, reallocating only when it is too small.
// Every buffer is fully written before it is read, so stale contents never
// matter.
func grow(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]float32, n)
}

// matmul computes out (n rows of w.Rows()) = w applied to each of the n rows
// of in, splitting weight rows across threads.
func (e *Engine) matmul(st *state, w *tensor.Tensor, in, out []float32) {
	e.prepare(st, in, w)
	e.matmulPrepared(st, w, out)
}

// prepare loads the n rows of in into st.acts for the weights ws, which all
// take in as input: the activations are quantised once per format that any
// of them needs (32-element blocks, 256-element super-blocks), however many
// matrices use them.
func (e *Engine) prepare(st *state, in []float32, ws ...*tensor.Tensor) {
	var buf [8]tensor.Type
	ts := buf[:0]
	for _, w := range ws {
		ts = append(ts, w.Type)
	}
	st.acts.PrepareTypes(ts, in, st.n, ws[0].Cols(), func(n int, fn func(lo, hi int)) {
		e.pool.run(n, 4, fn)
	})
}

// besideRows is the most rows for which prepareBeside runs: a decode
// step's batch, whose preparation (a few microseconds of quantising and
// packing, much of it serial) would leave a thread idle; a longer chunk
// prepares its rows in parallel.
const besideRows = 32

// prepareBeside is prepare on one thread while the pool's other threads
// run with (work that neither writes in nor reads the activations: a
// trace), in one job.
func (e *Engine) prepareBeside(st *state, in []float32, with seg, ws ...*tensor.Tensor) {
	var buf [8]tensor.Type
	ts := buf[:0]
	for _, w := range ws {
		ts = append(ts, w.Type)
	}
	e.pool.runSegs(seg{n: 1, grain: 1, fn: func(int, int) {
		st.acts.PrepareTypes(ts, in, st.n, ws[0].Cols(), nil)
	}}, with)
}

// matmulPrepared is matmul on the activations prepare loaded.
func (e *Engine) matmulPrepared(st *state, w *tensor.Tensor, out []float32) {
	e.pool.runSegs(matSeg(st, w, out))
}

// matSeg is matmulPrepared as a segment of a pool job: several products
// of the same prepared activations (and other work that reads them) run
// as one job.
func matSeg(st *state, w *tensor.Tensor, out []float32) seg {
	rows := w.Rows()
	return seg{n: rows, grain: 16, fn: func(lo, hi int) {
		kernels.MatMul(w, &st.acts, out, rows, lo, hi)
	}}
}

// rmsnorm normalises each of the n rows of in into out.
func (e *Engine) rmsnorm(st *state, w *tensor.Tensor, in, out []float32) {
	d := e.c.Dim
	wf := kernels.F32Row(w.Data)
	e.pool.run(st.n, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			kernels.RMSNorm(out[r*d:(r+1)*d], in[r*d:(r+1)*d], wf, e.c.NormEps)
		}
	})
}

func (e *Engine) layer(l int, st *state) {
	e.layerQKV(l, st)
	e.layerAttend(l, st)
	d, kv, qd := e.c.Dim, e.c.KVDim(), e.qd
	// The trace of the layer runs beside the output projection's
	// preparation or product (which read the attention output too, and
	// write nothing the trace reads).
	row := func(r int, t Tracer) LayerRow {
		return LayerRow{Tracer: t, Pos: st.rows[r].pos, X: st.x[r*d : (r+1)*d], K: st.k[r*kv : (r+1)*kv], V: st.v[r*kv : (r+1)*kv], Attn: st.att[r*qd : (r+1)*qd]}
	}
	if e.traceLayers == nil {
		e.layerFinish(l, st, e.traceSeg(st, func(r int, t Tracer) {
			lr := row(r, t)
			t.Layer(l, lr.Pos, lr.X, lr.K, lr.V, lr.Attn)
		}))
		return
	}
	// The traced items in groups of traceGroup, one TraceLayers call
	// each, the groups spread over the pool's threads.
	groups := (len(st.traced) + traceGroup - 1) / traceGroup
	e.layerFinish(l, st, seg{n: groups, grain: 1, fn: func(lo, hi int) {
		for g := lo; g < hi; g++ {
			spans := st.traced[g*traceGroup : min((g+1)*traceGroup, len(st.traced))]
			rows := make([]LayerRow, 0, spans[len(spans)-1].hi-spans[0].lo)
			for _, sp := range spans {
				t := st.rows[sp.lo].item.Trace
				for r := sp.lo; r < sp.hi; r++ {
					rows = append(rows, row(r, t))
				}
			}
			e.traceLayers(l, rows)
		}
	}})
}

// traceGroup is how many traced items one Options.TraceLayers call takes:
// a decode step of 16 sequences makes 4 calls of 4 rows, which the pool's
// threads share (a receipt recorder hashes 4 rows' 48 key/value leaves of
// the 110m shape in 3 passes of its 16 lanes where one row at a time took
// 4 passes of 12).
const traceGroup = 4

// traceSeg is a pool job's segment that calls fn on the rows of every
// traced item, the items spread over the pool's threads (a Tracer hashes
// its rows' vectors: in a batch of many sequences, the step would
// otherwise wait on one thread for all of them), each item's rows in
// order on one thread.
func (e *Engine) traceSeg(st *state, fn func(r int, t Tracer)) seg {
	return seg{n: len(st.traced), grain: 1, fn: func(lo, hi int) {
		for _, sp := range st.traced[lo:hi] {
			t := st.rows[sp.lo].item.Trace
			for r := sp.lo; r < sp.hi; r++ {
				fn(r, t)
			}
		}
	}}
}

// layerQKV computes the query, key and value vectors of every row (biases
// added, Q/K norms and RoPE applied) and writes keys and values into the
// rows' caches.
func (e *Engine) layerQKV(l int, st *state) {
	c := e.c
	L := &e.m.Layers[l]
	d, kv, hd := e.qd, c.KVDim(), e.hd
	var bq, bk, bv, qn, kn []float32
	if c.QKVBias {
		bq, bk, bv = kernels.F32Row(L.Bq.Data), kernels.F32Row(L.Bk.Data), kernels.F32Row(L.Bv.Data)
	}
	if c.QKNorm {
		qn, kn = kernels.F32Row(L.QNorm.Data), kernels.F32Row(L.KNorm.Data)
	}
	e.rmsnorm(st, L.AttnNorm, st.x, st.xb)
	e.prepare(st, st.xb, L.Wq, L.Wk, L.Wv)
	e.pool.runSegs(matSeg(st, L.Wq, st.q), matSeg(st, L.Wk, st.k), matSeg(st, L.Wv, st.v))
	half := hd / 2
	inAttend := e.storeInAttend(st)
	e.pool.run(st.n, 4, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			rw := st.rows[r]
			q, k := st.q[r*d:(r+1)*d], st.k[r*kv:(r+1)*kv]
			if bq != nil {
				kernels.Add(q, bq)
				kernels.Add(k, bk)
				kernels.Add(st.v[r*kv:(r+1)*kv], bv)
			}
			if qn != nil {
				for h := 0; h < len(q); h += hd {
					kernels.RMSNorm(q[h:h+hd], q[h:h+hd], qn, c.NormEps)
				}
				for h := 0; h < len(k); h += hd {
					kernels.RMSNorm(k[h:h+hd], k[h:h+hd], kn, c.NormEps)
				}
			}
			cos, sin := st.cos[r*half:(r+1)*half], st.sin[r*half:(r+1)*half]
			e.rope(q, cos, sin)
			e.rope(k, cos, sin)
			if e.kv == KVF16 {
				// SpecKV16: the key and value the position caches,
				// traces and attends to are binary16 values.
				kernels.RoundF16(k)
				kernels.RoundF16(st.v[r*kv : (r+1)*kv])
			}
			if rw.seq != nil && !inAttend {
				rw.seq.store(l, rw.pos, st.k[r*kv:(r+1)*kv], st.v[r*kv:(r+1)*kv])
			}
		}
	})
}

// layerAttend computes the attention output of every row over the row's
// cache positions 0..pos: one (row, key/value head) pair per unit of work,
// the query heads of the group together (AttendGroup), or, when that would
// leave threads idle (a few rows of a model with few key/value heads), one
// (row, query head) pair per unit (AttendGroup of a group of one). Both
// give the same bits. The units go head by head, all rows of one head
// before the next: the rows of a prefill read the same cache of that head,
// which then stays in the core's caches from one row to the next.
func (e *Engine) layerAttend(l int, st *state) {
	c := e.c
	d, hd, kv := e.qd, e.hd, c.KVDim()
	group := c.Heads / c.KVHeads
	inAttend := e.storeInAttend(st)
	// store writes row r's keys and values of key/value head g to its
	// cache, where layerQKV left that to the unit that owns them.
	store := func(r, g int) {
		if inAttend {
			o := r*kv + g*hd
			st.rows[r].seq.storeHead(l, st.rows[r].pos, g, st.k[o:o+hd], st.v[o:o+hd])
		}
	}
	if e.attendByKVHead(st) {
		e.pool.run(st.n*c.KVHeads, 1, func(lo, hi int) {
			sc := e.getScratch()
			startAhead(sc, st, l, lo, hi, 1)
			for u := lo; u < hi; u++ {
				g, r := u/st.n, u%st.n
				rw := st.rows[r]
				store(r, g)
				q := st.q[r*d+g*group*hd : r*d+(g+1)*group*hd]
				AttendGroup(q, group, rw.seq.cache(l), g, rw.pos+1, e.scale, st.att[r*d+g*group*hd:r*d+(g+1)*group*hd], sc)
			}
			sc.ahead.stop()
			e.scratch.Put(sc)
		})
		return
	}
	e.pool.run(st.n*c.Heads, 1, func(lo, hi int) {
		sc := e.getScratch()
		startAhead(sc, st, l, lo, hi, group)
		for u := lo; u < hi; u++ {
			h, r := u/st.n, u%st.n
			rw := st.rows[r]
			store(r, h) // group == 1 where inAttend: h is the key/value head
			AttendGroup(st.q[r*d+h*hd:r*d+(h+1)*hd], 1, rw.seq.cache(l), h/group, rw.pos+1, e.scale, st.att[r*d+h*hd:r*d+(h+1)*hd], sc)
		}
		sc.ahead.stop()
		e.scratch.Put(sc)
	})
}

// startAhead starts sc's prefetch stream (kvAhead) over layerAttend's
// units lo..hi-1 of layer l: unit u reads row u%n's cache of key/value
// head u/n/group (group 1: units of key/value heads; else of query heads).
func startAhead(sc *groupScratch, st *state, l, lo, hi, group int) {
	v := lo
	sc.ahead.start(func(add func([]float32)) bool {
		if v == hi {
			return false
		}
		rw := st.rows[v%st.n]
		rw.seq.cache(l).streams(v/st.n/group, rw.pos+1, add)
		v++
		return true
	})
}

// attendByKVHead reports whether layerAttend's units are (row, key/value
// head) pairs, the query heads of a group together; else (row, query head).
func (e *Engine) attendByKVHead(st *state) bool {
	return e.c.Heads > e.c.KVHeads && st.n*e.c.KVHeads >= 2*e.pool.n
}

// storeInAttend reports whether the attention units store the keys and
// values of this layer's rows in the cache, each unit those of its own
// (row, key/value head) just before reading them back, instead of
// layerQKV storing every row's: where no other unit reads them, that is
// every row is the only one of its sequence in the chunk (a decode batch;
// the rows of a prefill read each other's) and one unit owns each key/value
// head of a row (no two query heads of a group in separate units). The
// units' prefetch stream (kvAhead) takes those cache lines with the rest
// of the head's run, so that a store finds them in the L2 cache, or soon
// will, instead of fetching each for writing from memory alone. The same
// values in the same places.
func (e *Engine) storeInAttend(st *state) bool {
	return st.oneRowEach && (e.c.Heads == e.c.KVHeads || e.attendByKVHead(st))
}

// getScratch returns attention working memory from e.scratch or a new one.
func (e *Engine) getScratch() *groupScratch {
	if sc, ok := e.scratch.Get().(*groupScratch); ok {
		return sc
	}
	return new(groupScratch)
}

// layerFinish applies the output projection and the feed-forward block,
// both with residual connections, to every row's hidden state; with (the
// layer's trace: it reads the layer's input, keys, values and attention
// output, and writes none of them) runs beside the preparation of the
// output projection's activations for a decode batch (up to besideRows
// rows: the preparation runs on one thread), else beside the product.
func (e *Engine) layerFinish(l int, st *state, with seg) {
	L := &e.m.Layers[l]
	n, d := st.n, e.c.Dim
	o := st.hb[:n*d] // free until the feed-forward block
	if with.n > 0 && n <= besideRows {
		e.prepareBeside(st, st.att, with, L.Wo)
		e.matmulPrepared(st, L.Wo, o)
	} else {
		e.prepare(st, st.att, L.Wo)
		e.pool.runSegs(matSeg(st, L.Wo, o), with)
	}
	e.add(st.x, o)
	e.rmsnorm(st, L.FFNNorm, st.x, st.xb)
	e.prepare(st, st.xb, L.FFNGate, L.FFNUp)
	// Each part computes the gate and up products of the same hidden
	// units, for every row, and their SwiGLU (element by element) right
	// away, while they are in the core's cache. hb2 lies over q, k, v and
	// att, which the trace read above.
	H := e.c.Hidden
	hb := st.hb[:n*H]
	e.pool.run(H, 16, func(lo, hi int) {
		kernels.MatMul(L.FFNGate, &st.acts, hb, H, lo, hi)
		kernels.MatMul(L.FFNUp, &st.acts, st.hb2, H, lo, hi)
		for r := range n {
			kernels.SwiGLU(hb[r*H+lo:r*H+hi], hb[r*H+lo:r*H+hi], st.hb2[r*H+lo:r*H+hi])
		}
	})
	o = st.u[:n*d] // hb2 is spent
	e.matmul(st, L.FFNDown, hb, o)
	e.add(st.x, o)
}

// add adds y to x element by element, in parallel for large batches.
func (e *Engine) add(x, y []float32) {
	e.pool.run(len(x), 16384, func(lo, hi int) {
		kernels.Add(x[lo:hi], y[lo:hi])
	})
}

// Attend computes one head's attention output for a query q over n cached
// positions: keys and values are flat caches with row stride `stride`, the
// head's slice starting at column off. It is the reference of the engine's
// attention over its paged cache (AttendGroup), which gives the same bits.
//
//	s_t = Dot(q, k_t) / scale, t < n; a = Softmax(s)
//	out = 0; for t = 0..n-1: out_i = out_i + float32(a_t * v_t,i)
func Attend(q, keys, values []float32, stride, off, n int, scale float32, out, scores []float32) {
	kernels.DotMany(scores[:n], q, keys, stride, off)
	for t := 0; t < n; t++ {
		scores[t] = scores[t] / scale
	}
	kernels.Softmax(scores[:n])
	kernels.WeightedSum(out, scores[:n], values, stride, off)
}

// finish applies the output norm and classifier to the rows of st that
// need logits and appends them to their items' Out; it reports whether
// there were any.
func (e *Engine) finish(st *state) bool {
	d := e.c.Dim
	final := e.traceSeg(st, func(r int, t Tracer) { t.Final(st.rows[r].pos, st.x[r*d:(r+1)*d]) })
	var sel []int
	for r, rw := range st.rows {
		it := rw.item
		if (it.Logits == LogitsAll && rw.i >= it.LogitsFrom) || (it.Logits == LogitsLast && rw.i == len(it.Tokens)-1) {
			sel = append(sel, r)
		}
	}
	if len(sel) == 0 {
		e.pool.runSegs(final)
		return false
	}
	// The classifier's rows reuse the chunk's quantised-activation buffers.
	sub := &state{rows: make([]row, len(sel)), n: len(sel), xb: make([]float32, len(sel)*d), acts: st.acts}
	defer func() { st.acts = sub.acts }()
	for i, r := range sel {
		sub.rows[i] = st.rows[r]
	}
	// The output norm of the selected rows reads the chunk's states in
	// place; the final states' trace runs beside it, or beside the
	// classifier's preparation (which reads only sub.xb).
	wf := kernels.F32Row(e.m.OutputNorm.Data)
	norm := seg{n: len(sel), grain: 4, fn: func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r := sel[i]
			kernels.RMSNorm(sub.xb[i*d:(i+1)*d], st.x[r*d:(r+1)*d], wf, e.c.NormEps)
		}
	}}
	vocab := e.c.Vocab
	logits := make([]float32, len(sel)*vocab)
	if final.n > 0 && sub.n <= besideRows {
		e.pool.runSegs(norm)
		e.prepareBeside(sub, sub.xb, final, e.m.Output)
	} else {
		e.pool.runSegs(norm, final)
		e.prepare(sub, sub.xb, e.m.Output)
	}
	e.matmulPrepared(sub, e.m.Output, logits)
	for i, rw := range sub.rows {
		rw.item.Out = append(rw.item.Out, logits[i*vocab:(i+1)*vocab:(i+1)*vocab])
	}
	return true
}
