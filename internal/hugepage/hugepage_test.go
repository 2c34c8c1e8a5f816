package hugepage

import "testing"

func TestFloats(t *testing.T) {
	for _, n := range []int{1, 15, 1000, Size / 4, Size/4 + 1, 3*Size/4 - 7} {
		b := Floats(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Floats(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i, v := range b {
			if v != 0 {
				t.Fatalf("Floats(%d)[%d] = %v, want 0", n, i, v)
			}
		}
		b[n-1] = 1 // writable to the end
	}
	for _, n := range []int{0, -1} {
		if b := Floats(n); b != nil {
			t.Fatalf("Floats(%d) = %d values, want nil", n, len(b))
		}
	}
}
