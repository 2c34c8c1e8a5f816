package scheduler

import (
	"slices"
	"testing"
)

func TestDraft(t *testing.T) {
	for _, c := range []struct {
		prompt, output []int
		k              int
		want           []int
	}{
		{[]int{1, 5, 6, 7, 8, 9}, []int{5, 6, 7}, 4, []int{8, 9, 5, 6}}, // 3-gram 5 6 7 seen: what followed it
		{[]int{1, 5, 6, 7, 8, 9}, []int{5, 6, 7}, 1, []int{8}},
		{[]int{1, 4, 6, 2, 5, 6, 3}, []int{5, 6}, 2, []int{3, 5}}, // the latest occurrence of 5 6
		{[]int{1, 4, 6, 2, 5, 6, 3}, []int{6}, 2, nil},            // one token is no evidence
		{[]int{1, 2, 3}, []int{4}, 3, nil},                        // nothing repeats
		{[]int{1, 2}, nil, 0, nil},
		{[]int{7}, nil, 3, nil},
		{[]int{1, 9, 9}, []int{9}, 5, []int{9}}, // 9 9 seen at 1..2: what followed it
	} {
		got := draft(c.prompt, c.output, c.k)
		if !slices.Equal(got, c.want) {
			t.Errorf("draft(%v, %v, %d) = %v, want %v", c.prompt, c.output, c.k, got, c.want)
		}
	}
	// The draft is a copy: the prompt is not the caller's to lose.
	p := []int{1, 5, 6, 7, 5, 6}
	d := draft(p, nil, 2)
	d[0] = 99
	if p[3] != 7 {
		t.Fatal("draft aliases the prompt")
	}
}
