package sha256x16

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Size is the size of a SHA-256 digest.
const Size = sha256.Size

// Lanes is the number of messages the kernel hashes at once.
const Lanes = 16

// MinLanes is the fewest messages of a group of up to Lanes for which Sum
// runs the kernel; smaller groups (the last of a call, typically) are
// hashed one by one with crypto/sha256, which is faster for them.
const MinLanes = 7

// Available reports whether the multi-buffer kernel runs on this CPU
// (amd64 with AVX512F and AVX512BW). Without it Sum is crypto/sha256 in
// a loop.
func Available() bool { return hasKernel }

// Sum sets out[i] to SHA-256(prefix ‖ parts[i*k] ‖ parts[i*k+1] ‖ … ‖
// parts[i*k+k-1]) for every i, where k = len(parts)/len(out): message i is
// the prefix (shared by all messages; may be empty) followed by its k
// parts. The parts are read in place, never copied whole.
//
// Consecutive messages of the same shape (part p of each equally long)
// are hashed up to Lanes at a time on the multi-buffer kernel; a message
// followed by fewer than MinLanes-1 of its shape, or every message when
// there are fewer than MinLanes, is hashed alone with crypto/sha256. The
// digests are those of crypto/sha256 in every case.
//
// len(parts) must be a multiple of len(out) (it panics otherwise, as for
// an index out of range). D is any digest type of Size bytes (such as
// merkle.Hash).
func Sum[D ~[Size]byte](out []D, prefix []byte, parts [][]byte) {
	n := len(out)
	if n == 0 {
		if len(parts) != 0 {
			panic(fmt.Sprintf("sha256x16: %d parts for no messages", len(parts)))
		}
		return
	}
	if len(parts)%n != 0 {
		panic(fmt.Sprintf("sha256x16: %d parts for %d messages", len(parts), n))
	}
	k := len(parts) / n
	if !hasKernel || n < MinLanes {
		sumEach(out, prefix, parts, k)
		return
	}
	for lo := 0; lo < n; {
		// The run of messages shaped like message lo, up to Lanes.
		hi := lo + 1
		for hi < min(lo+Lanes, n) && sameShape(parts[lo*k:(lo+1)*k], parts[hi*k:(hi+1)*k]) {
			hi++
		}
		if hi-lo < MinLanes {
			hi = lo + 1
			sumEach(out[lo:hi], prefix, parts[lo*k:hi*k], k)
		} else {
			sum16(out[lo:hi], prefix, parts[lo*k:hi*k], k)
		}
		lo = hi
	}
}

// sameShape reports whether two messages' parts have equal lengths.
func sameShape(a, b [][]byte) bool {
	for p := range a {
		if len(a[p]) != len(b[p]) {
			return false
		}
	}
	return true
}

// equalShapes reports whether the n messages of k parts each have equal
// part lengths.
func equalShapes(parts [][]byte, n, k int) bool {
	for i := 1; i < n; i++ {
		if !sameShape(parts[:k], parts[i*k:(i+1)*k]) {
			return false
		}
	}
	return true
}

// sumEach is Sum of one group with crypto/sha256.
func sumEach[D ~[Size]byte](out []D, prefix []byte, parts [][]byte, k int) {
	h := sha256.New()
	for i := range out {
		h.Reset()
		h.Write(prefix)
		for _, p := range parts[i*k : (i+1)*k] {
			h.Write(p)
		}
		h.Sum(out[i][:0])
	}
}

// iv is the initial chaining value of SHA-256 (FIPS 180-4 section 5.3.3).
var iv = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// lanes is the kernel's working memory for one group.
type lanes struct {
	state   [8][16]uint32
	ptrs    [16]*byte
	scratch [16][64]byte
	plan    [65]copyOp // at most 64 segments overlap a block, plus one
}

// copyOp copies bytes [lo, lo+n) of segment seg to offset off of a block.
type copyOp struct{ seg, lo, off, n int }

// prefetchFrom is the shortest message (bytes, prefix included) whose
// parts sum16 prefetches before it hashes them.
const prefetchFrom = 256

// sum16 hashes a group of 1..16 messages of equal shape on the kernel.
// Since every message has the same segment boundaries (prefix, then part
// lengths), all lanes walk the same block layout: a run of blocks lying
// inside one segment is read in place from each lane's segment; a block
// that straddles segments or holds the padding is assembled per lane in
// scratch. Lanes beyond the group repeat lane 0 (their digests are
// dropped).
func sum16[D ~[Size]byte](out []D, prefix []byte, parts [][]byte, k int) {
	n := len(out)
	var g lanes
	for w := range g.state {
		for j := range g.state[w] {
			g.state[w][j] = iv[w]
		}
	}
	// Segment s of lane i: s = 0 the prefix, s >= 1 part s-1.
	nseg := k + 1
	seg := func(i, s int) []byte {
		if i >= n {
			i = 0
		}
		if s == 0 {
			return prefix
		}
		return parts[i*k+s-1]
	}
	L := len(prefix)
	for _, p := range parts[:k] {
		L += len(p)
	}
	padded := (L + 9 + 63) &^ 63
	// Every part's first lines and its last, for all lanes at once: the
	// scratch blocks copy from them a lane at a time, and a run's first
	// blocks are loaded before blocks16's own prefetches reach them
	// (parts just written by other cores, or fallen out of this one's
	// caches, would otherwise cost a wait on memory per lane). Not for
	// messages of a few blocks (Merkle nodes: hashes just computed).
	for s := 1; s < nseg && L >= prefetchFrom; s++ {
		l := len(seg(0, s))
		if l == 0 {
			continue
		}
		for i := range g.ptrs {
			g.ptrs[i] = &seg(i, s)[0]
		}
		prefetch16(&g.ptrs, min((l+63)/64, 4))
		if l > 4*64 {
			for i := range g.ptrs {
				g.ptrs[i] = &seg(i, s)[l-1]
			}
			prefetch16(&g.ptrs, 1)
		}
	}
	s, start := 0, 0 // the segment holding byte pos, and where it starts
	for pos := 0; pos < padded; {
		for s < nseg && pos >= start+len(seg(0, s)) {
			start += len(seg(0, s))
			s++
		}
		if s < nseg && pos+64 <= start+len(seg(0, s)) {
			run := (start + len(seg(0, s)) - pos) / 64
			for i := range g.ptrs {
				g.ptrs[i] = &seg(i, s)[pos-start]
			}
			blocks16(&g.state, &g.ptrs, run)
			pos += 64 * run
			continue
		}
		// The copies that fill this block, the same for every lane.
		plan := g.plan[:0]
		for ss, st := s, start; ss < nseg && st < pos+64; ss++ {
			l := len(seg(0, ss))
			lo, off := max(0, pos-st), max(0, st-pos)
			if c := min(l-lo, 64-off); c > 0 {
				plan = append(plan, copyOp{seg: ss, lo: lo, off: off, n: c})
			}
			st += l
		}
		for i := range g.ptrs {
			if i >= n {
				g.ptrs[i] = &g.scratch[0][0]
				continue
			}
			b := &g.scratch[i]
			clear(b[:])
			for _, c := range plan {
				d := prefix
				if c.seg > 0 {
					d = parts[i*k+c.seg-1]
				}
				copy(b[c.off:c.off+c.n], d[c.lo:])
			}
			if L >= pos && L < pos+64 {
				b[L-pos] = 0x80
			}
			if pos+64 == padded {
				binary.BigEndian.PutUint64(b[56:], uint64(L)<<3)
			}
			g.ptrs[i] = &b[0]
		}
		blocks16(&g.state, &g.ptrs, 1)
		pos += 64
	}
	for i := range out {
		for w := range g.state {
			binary.BigEndian.PutUint32(out[i][4*w:], g.state[w][i])
		}
	}
}
