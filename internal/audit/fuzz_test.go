package audit

import (
	"bytes"
	"testing"

	"github.com/verdictnet/verdict/internal/sampler"
)

// FuzzCheck mutates honest openings: Check must never panic, and must
// reject every change that still parses.
func FuzzCheck(f *testing.F) {
	fx := loadFixture(f, "stories260K.gguf", 1)
	r := fx.generateReceipt(f, storyPrompt, sampler.Params{Temperature: 0.9, Seed: 1}, 24)
	const seed, k = 3, 4
	o, err := Open(f.Context(), fx.e, r, seed, k)
	if err != nil {
		f.Fatal(err)
	}
	good := o.Marshal()
	f.Add(uint32(100), byte(1), uint32(0))
	f.Add(uint32(len(good)/2), byte(0x20), uint32(3))
	f.Fuzz(func(t *testing.T, at uint32, x byte, cut uint32) {
		data := append([]byte(nil), good...)
		data[int(at)%len(data)] ^= x
		data = data[:len(data)-int(cut)%8]
		op, err := ParseOpenings(data)
		if err != nil {
			return
		}
		err = Check(fx.m, fx.id, r, seed, k, op)
		if bytes.Equal(data, good) {
			if err != nil {
				t.Fatalf("honest openings rejected: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("altered openings accepted")
		}
	})
}
