package refcheck

import (
	"math"
	"sort"
	"strings"
	"testing"
)

// logitsOf returns logits whose softmax is p (p > 0).
func logitsOf(p ...float64) []float32 {
	l := make([]float32, len(p))
	for i, v := range p {
		l[i] = float32(math.Log(v))
	}
	return l
}

// probs is llama.cpp's answer for one position: token i has probability
// p[i]; the list is sorted most probable first, as llama.cpp's is.
func probs(p ...float64) []TokenProb {
	tp := make([]TokenProb, len(p))
	for i, v := range p {
		tp[i] = TokenProb{i, v}
	}
	sort.SliceStable(tp, func(a, b int) bool { return tp[a].Prob > tp[b].Prob })
	return tp
}

func TestCompare(t *testing.T) {
	loose := Criteria{MinTopAgree: 0.5, NearTie: 0.1, MaxAbs: 0.2, MeanAbs: 0.2}
	cases := []struct {
		name    string
		llama   [][]TokenProb
		verdict [][]float32
		crit    Criteria
		agree   int
		maxAbs  float64
		wantErr string // "" when Check passes
	}{
		{"identical", [][]TokenProb{probs(0.7, 0.2, 0.1), probs(0.1, 0.1, 0.8)},
			[][]float32{logitsOf(0.7, 0.2, 0.1), logitsOf(0.1, 0.1, 0.8)}, loose, 2, 0, ""},
		{"small difference", [][]TokenProb{probs(0.7, 0.2, 0.1)},
			[][]float32{logitsOf(0.69, 0.21, 0.1)}, loose, 1, 0.01, ""},
		{"difference above the bound", [][]TokenProb{probs(0.7, 0.2, 0.1)},
			[][]float32{logitsOf(0.6, 0.3, 0.1)}, Criteria{MinTopAgree: 0.5, NearTie: 0.1, MaxAbs: 0.05, MeanAbs: 1}, 1, 0.1, "above the bound"},
		{"mean above the bound", [][]TokenProb{probs(0.7, 0.2, 0.1)},
			[][]float32{logitsOf(0.6, 0.3, 0.1)}, Criteria{MinTopAgree: 0.5, NearTie: 0.1, MaxAbs: 1, MeanAbs: 0.05}, 1, 0.1, "mean over positions"},
		{"near-tie disagreement", [][]TokenProb{probs(0.7, 0.2, 0.1), probs(0.41, 0.40, 0.19)},
			[][]float32{logitsOf(0.7, 0.2, 0.1), logitsOf(0.40, 0.41, 0.19)}, loose, 1, 0.01, ""},
		{"disagreement that is no near-tie", [][]TokenProb{probs(0.7, 0.2, 0.1), probs(0.6, 0.3, 0.1)},
			[][]float32{logitsOf(0.7, 0.2, 0.1), logitsOf(0.3, 0.6, 0.1)}, Criteria{MinTopAgree: 0.5, NearTie: 0.1, MaxAbs: 1, MeanAbs: 1}, 1, 0.3, "not a near-tie"},
		{"Verdict's top not among llama.cpp's", [][]TokenProb{probs(0.7/0.9, 0.2/0.9)},
			[][]float32{logitsOf(0.2, 0.1, 0.7)}, Criteria{MinTopAgree: 0, NearTie: 0.1, MaxAbs: 1, MeanAbs: 1}, 0, 1.0 / 9, "gap +Inf"},
		{"too few agreements", [][]TokenProb{probs(0.41, 0.40, 0.19), probs(0.41, 0.40, 0.19)},
			[][]float32{logitsOf(0.40, 0.41, 0.19), logitsOf(0.40, 0.41, 0.19)}, Criteria{MinTopAgree: 0.99, NearTie: 0.1, MaxAbs: 1, MeanAbs: 1}, 0, 0.01, "top token agrees at 0 of 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Compare(c.llama, c.verdict)
			if err != nil {
				t.Fatal(err)
			}
			if r.TopAgree != c.agree || math.Abs(r.MaxAbs-c.maxAbs) > 1e-6 {
				t.Errorf("agree %d max %g, want %d and %g", r.TopAgree, r.MaxAbs, c.agree, c.maxAbs)
			}
			err = r.Check(c.crit)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("Check: %v, want an error with %q", err, c.wantErr)
			}
		})
	}
	if _, err := Compare([][]TokenProb{probs(1)}, nil); err == nil {
		t.Error("Compare accepted a different number of positions")
	}
	if _, err := Compare([][]TokenProb{probs(0.5, 0.5)}, [][]float32{logitsOf(1)}); err == nil {
		t.Error("Compare accepted a token outside Verdict's vocabulary")
	}
	if err := (Report{}).Check(Criteria{}); err == nil {
		t.Error("an empty report passed")
	}
}

// tops is one position of llama.cpp's answer with explicit tokens, most
// probable first.
func tops(tp ...TokenProb) []TokenProb { return tp }

func TestCompareTops(t *testing.T) {
	cases := []struct {
		name      string
		ref, oth  [][]TokenProb
		agree     int
		identical int
		maxAbs    float64
		gaps      []float64 // of the disagreements, in order
		maxTail   float64
	}{
		{"identical", [][]TokenProb{probs(0.7, 0.2, 0.1), probs(0.1, 0.1, 0.8)},
			[][]TokenProb{probs(0.7, 0.2, 0.1), probs(0.1, 0.1, 0.8)}, 2, 2, 0, nil, 0},
		{"rounding", [][]TokenProb{probs(0.7, 0.2, 0.1)}, [][]TokenProb{probs(0.69, 0.21, 0.1)}, 1, 0, 0.01, nil, 0},
		{"swapped near-tie", [][]TokenProb{probs(0.44, 0.4, 0.16)}, [][]TokenProb{probs(0.4, 0.44, 0.16)}, 0, 0, 0.04,
			[]float64{math.Log(0.44 / 0.4)}, 0},
		// The lists differ in their last token: both are renormalised
		// over tokens 0 and 1 (0.6/0.9 against 0.5/0.8).
		{"different top K", [][]TokenProb{tops(TokenProb{0, 0.6}, TokenProb{1, 0.3}, TokenProb{2, 0.1})},
			[][]TokenProb{tops(TokenProb{0, 0.5}, TokenProb{1, 0.3}, TokenProb{3, 0.2})}, 1, 0, 0.6/0.9 - 0.5/0.8, nil, 0.2},
		{"other's top not in ref's list", [][]TokenProb{tops(TokenProb{0, 0.6}, TokenProb{1, 0.4})},
			[][]TokenProb{tops(TokenProb{2, 0.5}, TokenProb{0, 0.3}, TokenProb{1, 0.2})}, 0, 0, 0, []float64{math.Inf(1)}, 0.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := CompareTops(c.ref, c.oth)
			if err != nil {
				t.Fatal(err)
			}
			if r.TopAgree != c.agree || r.Identical != c.identical || math.Abs(r.MaxAbs-c.maxAbs) > 1e-9 || math.Abs(r.MaxTail-c.maxTail) > 1e-9 {
				t.Errorf("agree %d identical %d max %g tail %g, want %d, %d, %g and %g", r.TopAgree, r.Identical, r.MaxAbs, r.MaxTail,
					c.agree, c.identical, c.maxAbs, c.maxTail)
			}
			if len(r.Disagreements) != len(c.gaps) {
				t.Fatalf("%d disagreements, want %d", len(r.Disagreements), len(c.gaps))
			}
			for i, d := range r.Disagreements {
				if !(math.Abs(d.Gap-c.gaps[i]) <= 1e-9) && !(math.IsInf(d.Gap, 1) && math.IsInf(c.gaps[i], 1)) {
					t.Errorf("disagreement %d: gap %g, want %g", i, d.Gap, c.gaps[i])
				}
			}
		})
	}
	if _, err := CompareTops([][]TokenProb{probs(1)}, nil); err == nil {
		t.Error("CompareTops accepted a different number of positions")
	}
	if _, err := CompareTops([][]TokenProb{probs(1)}, [][]TokenProb{tops(TokenProb{5, 1})}); err == nil {
		t.Error("CompareTops accepted lists without a common token")
	}
	if _, err := CompareTops([][]TokenProb{probs(1)}, [][]TokenProb{nil}); err == nil {
		t.Error("CompareTops accepted an empty list")
	}
}

func TestGreedyCheck(t *testing.T) {
	cases := []struct {
		name string
		g    GreedyReport
		ok   bool
	}{
		{"same", GreedyReport{Steps: 10, Same: 10}, true},
		{"near-tie divergence", GreedyReport{Steps: 10, Same: 4, Diverged: true, Gap: 0.01}, true},
		{"divergence", GreedyReport{Steps: 10, Same: 4, Diverged: true, Gap: 0.5}, false},
		{"not in llama.cpp's top tokens", GreedyReport{Steps: 10, Same: 4, Diverged: true, Gap: math.Inf(1)}, false},
		{"nothing generated", GreedyReport{}, false},
	}
	for _, c := range cases {
		if err := c.g.Check(0.1); (err == nil) != c.ok {
			t.Errorf("%s: Check = %v", c.name, err)
		}
	}
}

func TestSoftmax(t *testing.T) {
	p := Softmax([]float32{0, float32(math.Log(3)), -1000})
	if math.Abs(p[0]-0.25) > 1e-7 || math.Abs(p[1]-0.75) > 1e-7 || p[2] != 0 {
		t.Errorf("Softmax = %v", p)
	}
}
