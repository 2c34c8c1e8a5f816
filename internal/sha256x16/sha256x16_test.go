package sha256x16

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"
)

// want is the crypto/sha256 digest of prefix ‖ parts.
func want(prefix []byte, parts ...[]byte) [Size]byte {
	return sha256.Sum256(bytes.Join(append([][]byte{prefix}, parts...), nil))
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// check hashes msgs (k parts each) with Sum and with sum16 (the kernel,
// whatever the lane count) and compares both with crypto/sha256.
func check(t *testing.T, name string, prefix []byte, parts [][]byte, n int) {
	t.Helper()
	k := len(parts) / n
	exp := make([][Size]byte, n)
	for i := range exp {
		exp[i] = want(prefix, parts[i*k:(i+1)*k]...)
	}
	got := make([][Size]byte, n)
	Sum(got, prefix, parts)
	for i := range got {
		if got[i] != exp[i] {
			t.Fatalf("%s: Sum message %d of %d: %x, want %x", name, i, n, got[i], exp[i])
		}
	}
	if hasKernel && n <= Lanes && equalShapes(parts, n, k) {
		clear(got)
		sum16(got, prefix, parts, k)
		for i := range got {
			if got[i] != exp[i] {
				t.Fatalf("%s: kernel message %d of %d: %x, want %x", name, i, n, got[i], exp[i])
			}
		}
	}
}

func TestEveryLength(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for L := 0; L <= 300; L++ {
		for _, n := range []int{1, 3, 16} {
			msgs := make([][]byte, n)
			for i := range msgs {
				msgs[i] = randBytes(r, L)
			}
			check(t, fmt.Sprintf("length %d", L), nil, msgs, n)
		}
	}
}

func TestLanes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 1; n <= 40; n++ {
		for _, L := range []int{55, 56, 64, 119, 1000} {
			msgs := make([][]byte, n)
			for i := range msgs {
				msgs[i] = randBytes(r, L)
			}
			check(t, fmt.Sprintf("%d messages of %d bytes", n, L), nil, msgs, n)
		}
	}
}

func TestLongLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 8 {
		L := 300 + r.IntN(20000)
		msgs := make([][]byte, 16)
		for i := range msgs {
			msgs[i] = randBytes(r, L)
		}
		check(t, fmt.Sprintf("length %d", L), []byte{0}, msgs, 16)
	}
}

// TestPrefixAndParts covers the Merkle shapes (0x00 ‖ k ‖ v leaves, 0x01 ‖
// l ‖ r nodes) and parts that split blocks anywhere.
func TestPrefixAndParts(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	shapes := []struct {
		prefix []byte
		lens   []int
	}{
		{[]byte{1}, []int{32, 32}},
		{[]byte{0}, []int{256, 256}},
		{[]byte{0}, []int{512}},
		{[]byte{0}, []int{0, 0, 0}},
		{[]byte{0}, []int{63, 0, 1, 64, 65}},
		{[]byte("verdict/long prefix of more than one block: 0123456789abcdef0123456789"), []int{7, 200}},
		{nil, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
	}
	for _, s := range shapes {
		for _, n := range []int{1, 5, 16, 17} {
			var parts [][]byte
			for range n {
				for _, l := range s.lens {
					parts = append(parts, randBytes(r, l))
				}
			}
			check(t, fmt.Sprintf("prefix %d bytes, parts %v, %d messages", len(s.prefix), s.lens, n), s.prefix, parts, n)
		}
	}
}

// TestUnequal: groups whose messages differ in length (or in where their
// parts split) are hashed correctly (one by one).
func TestUnequal(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	var msgs [][]byte
	for i := range 20 {
		msgs = append(msgs, randBytes(r, 100+i%3))
	}
	check(t, "unequal lengths", []byte{0}, msgs, 20)
	var parts [][]byte
	for i := range 16 {
		parts = append(parts, randBytes(r, 10+i%2), randBytes(r, 10-i%2))
	}
	check(t, "unequal splits", []byte{0}, parts, 16)
	// Runs of equal shape between odd ones (the chunks of tensors, each
	// ending short).
	msgs = msgs[:0]
	for i := range 70 {
		l := 130
		if i%13 == 12 || i == 69 {
			l = 7
		}
		msgs = append(msgs, randBytes(r, l))
	}
	check(t, "runs", nil, msgs, 70)
}

func TestPartsNotMultiple(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("3 parts for 2 messages did not panic")
		}
	}()
	Sum(make([][Size]byte, 2), nil, make([][]byte, 3))
}

// TestKnownAnswer pins the kernel to the FIPS 180-4 example "abc" (one
// block) and the two-block example, 16 times each.
func TestKnownAnswer(t *testing.T) {
	for _, c := range []struct{ msg, hex string }{
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	} {
		msgs := make([][]byte, 16)
		for i := range msgs {
			msgs[i] = []byte(c.msg)
		}
		out := make([][Size]byte, 16)
		Sum(out, nil, msgs)
		for i := range out {
			if got := fmt.Sprintf("%x", out[i]); got != c.hex {
				t.Fatalf("SHA-256(%q) lane %d = %s, want %s", c.msg, i, got, c.hex)
			}
		}
	}
}

func FuzzSum(f *testing.F) {
	f.Add([]byte("abc"), uint8(16), uint8(2), uint16(5))
	f.Add([]byte{0}, uint8(4), uint8(1), uint16(0))
	f.Add([]byte{1}, uint8(16), uint8(2), uint16(32))
	f.Add([]byte{}, uint8(17), uint8(3), uint16(100))
	f.Fuzz(func(t *testing.T, prefix []byte, n, k uint8, l uint16) {
		nn, kk := int(n%40)+1, int(k%5)+1
		r := rand.New(rand.NewPCG(uint64(l), uint64(nn)))
		var parts [][]byte
		for range nn {
			for p := range kk {
				parts = append(parts, randBytes(r, (int(l)+p*7)%1200))
			}
		}
		check(t, "fuzz", prefix, parts, nn)
	})
}

func benchSum(b *testing.B, n, L int, kernel bool) {
	r := rand.New(rand.NewPCG(1, 1))
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = randBytes(r, L)
	}
	out := make([][Size]byte, n)
	b.SetBytes(int64(n * L))
	b.ResetTimer()
	for range b.N {
		switch {
		case kernel && hasKernel && n <= Lanes:
			sum16(out, nil, msgs, 1) // whatever n
		case kernel:
			Sum(out, nil, msgs)
		default:
			sumEach(out, nil, msgs, 1)
		}
	}
}

// BenchmarkSum compares Sum (the kernel where there is one) with
// crypto/sha256 one message at a time, on one core, for 16 messages.
func BenchmarkSum(b *testing.B) {
	for _, L := range []int{65, 257, 4096, 65536, 513024} {
		for _, kernel := range []bool{true, false} {
			name := "x16"
			if !kernel {
				name = "sha256"
			}
			b.Run(fmt.Sprintf("%s/%d", name, L), func(b *testing.B) { benchSum(b, 16, L, kernel) })
		}
	}
}

// BenchmarkNodes is the Merkle node shape: 0x01 ‖ left ‖ right.
func BenchmarkNodes(b *testing.B) {
	const n = 1024
	hs := make([][32]byte, 2*n)
	parts := make([][]byte, 2*n)
	for i := range parts {
		hs[i][0] = byte(i)
		parts[i] = hs[i][:]
	}
	out := make([][Size]byte, n)
	for _, kernel := range []bool{true, false} {
		name := "x16"
		if !kernel {
			name = "sha256"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				if kernel {
					Sum(out, []byte{1}, parts)
				} else {
					sumEach(out, []byte{1}, parts, 2)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/node")
		})
	}
}

// BenchmarkLanes is Sum of fewer than 16 messages of 257 bytes (the kernel
// still runs 16 lanes) against crypto/sha256 one by one: where MinLanes
// comes from.
func BenchmarkLanes(b *testing.B) {
	for _, n := range []int{2, 3, 4, 6, 8} {
		b.Run(fmt.Sprintf("x16/%d", n), func(b *testing.B) { benchSum(b, n, 257, true) })
		b.Run(fmt.Sprintf("sha256/%d", n), func(b *testing.B) { benchSum(b, n, 257, false) })
	}
}

// BenchmarkSumCold is Sum of 16 messages read from memory rather than the
// core's caches, in the shapes of a 110m decode step's trace leaves (a
// head's key and value, 2 parts of 256 bytes from two places; a head's
// attention output, 256 bytes; a layer input, 3072): each call takes the
// next parts of a 64 MiB arena, as a batch step hashes leaves written a
// moment before by other cores and evicted by the weights streaming past.
func BenchmarkSumCold(b *testing.B) {
	arena := make([]byte, 64<<20)
	for i := range arena {
		arena[i] = byte(i * 7)
	}
	for _, shape := range []struct {
		name string
		k, L int // parts of L bytes a message
	}{{"kv", 2, 256}, {"att", 1, 256}, {"x", 1, 3072}} {
		slots := len(arena) / shape.L
		out := make([][Size]byte, 16)
		parts := make([][]byte, 16*shape.k)
		b.Run("x16/"+shape.name, func(b *testing.B) {
			b.SetBytes(int64(16 * shape.k * shape.L))
			next := 0
			for b.Loop() {
				for i := range parts {
					parts[i] = arena[next*shape.L : (next+1)*shape.L]
					next = (next + 7919) % slots // not the next slot: no stream to follow
				}
				Sum(out, []byte{0}, parts)
			}
		})
	}
}
