package tokenizer_test

import (
	"fmt"
	"github.com/verdictnet/verdict/internal/testutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchText is about 4,000 tokens of story text (with either shared
// vocabulary) built from the reference greedy outputs.
func benchText(b *testing.B) string {
	dir := testutil.Shared(b, ".")
	var sb strings.Builder
	for sb.Len() < 16000 {
		for _, p := range []string{"p1", "p2", "p3", "noprompt_200"} {
			data, err := os.ReadFile(filepath.Join(dir, "reference/greedy", p+".txt"))
			if err != nil {
				b.Fatal(err)
			}
			sb.Write(data)
		}
	}
	return sb.String()
}

// BenchmarkEncode encodes about 4k tokens (x1) and 32k tokens (x8): the
// time per byte must stay nearly flat (O(n log n)).
func BenchmarkEncode(b *testing.B) {
	for _, f := range []string{"models/tok512.bin", "models/ggml-vocab-llama-spm.gguf"} {
		for _, k := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/x%d", filepath.Base(f), k), func(b *testing.B) {
				tok := load(b, f)
				text := strings.Repeat(benchText(b), k)
				ids, err := tok.Encode(text, true)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(text)))
				for b.Loop() {
					if _, err := tok.Encode(text, true); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(ids)), "tokens")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	tok := load(b, "models/tok512.bin")
	ids, err := tok.Encode(benchText(b), true)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}
