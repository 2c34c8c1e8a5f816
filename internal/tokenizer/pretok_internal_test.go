package tokenizer

import (
	"slices"
	"testing"
)

// TestRanges: inRanges agrees with a linear scan of the class as written.
func TestRanges(t *testing.T) {
	for _, class := range []string{"a-cb-fx\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff", "A-Za-z\u00b5\u00c0-\u00d6", "!-/:-~\uff01-\uff0f"} {
		r := []rune(class)
		var raw [][2]rune
		for i := 0; i < len(r); i++ {
			if i+2 < len(r) && r[i+1] == '-' {
				raw = append(raw, [2]rune{r[i], r[i+2]})
				i += 2
			} else {
				raw = append(raw, [2]rune{r[i], r[i]})
			}
		}
		rs := parseRanges(class)
		for c := rune(0); c < 0x10000; c++ {
			want := slices.ContainsFunc(raw, func(x [2]rune) bool { return c >= x[0] && c <= x[1] })
			if got := inRanges(rs, c); got != want {
				t.Fatalf("%q: U+%04X: %v, want %v", class, c, got, want)
			}
		}
	}
}
