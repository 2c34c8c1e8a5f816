package generate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"math"
)

// Digest hashes logit vectors with SHA-256: the little-endian bits of each
// float32, vector after vector in position order. It is the `digest:` line of
// `verdict run --digest`.
type Digest struct {
	h   hash.Hash
	buf []byte
}

// NewDigest returns an empty digest.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

// Add appends one logit vector.
func (d *Digest) Add(logits []float32) {
	d.buf = d.buf[:0]
	for _, v := range logits {
		d.buf = binary.LittleEndian.AppendUint32(d.buf, math.Float32bits(v))
	}
	d.h.Write(d.buf)
}

// Hex returns the digest so far in lowercase hex.
func (d *Digest) Hex() string { return hex.EncodeToString(d.h.Sum(nil)) }
