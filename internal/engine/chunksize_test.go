package engine

import "testing"

// TestChunkSize: as few passes as the chunk allows, of even sizes rounded
// up to a multiple of 16, never over the chunk, covering every row.
func TestChunkSize(t *testing.T) {
	for _, c := range []struct{ n, chunk, want int }{
		{1, 128, 128},
		{128, 128, 128},
		{129, 128, 80},  // 80 + 49, was 128 + 1
		{135, 128, 80},  // 80 + 55, was 128 + 7
		{144, 128, 80},  // 80 + 64
		{256, 128, 128}, // 128 + 128
		{257, 128, 96},  // 96 + 96 + 65
		{33, 16, 16},    // a chunk of 16: 16 + 16 + 1
		{40, 24, 24},    // 24 + 16 (a chunk that is not a multiple of 16)
		{25, 24, 16},    // 16 + 9
		{1000, 100, 100},
	} {
		got := chunkSize(c.n, c.chunk)
		if got != c.want {
			t.Errorf("chunkSize(%d, %d) = %d, want %d", c.n, c.chunk, got, c.want)
		}
		passes := (c.n + c.chunk - 1) / c.chunk
		if got > c.chunk || (c.n+got-1)/got != passes {
			t.Errorf("chunkSize(%d, %d) = %d: over the chunk, or %d passes where %d do", c.n, c.chunk, got, (c.n+got-1)/got, passes)
		}
	}
}
