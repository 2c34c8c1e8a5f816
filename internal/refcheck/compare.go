package refcheck

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

// Criteria are what agreement with llama.cpp means.
type Criteria struct {
	// MinTopAgree is the least share of positions whose most probable
	// token is the same in both engines (0.99).
	MinTopAgree float64
	// NearTie is the largest log-probability gap, in llama.cpp's own
	// distribution, between llama.cpp's most probable token and Verdict's
	// for a disagreement to be excused: ln p(llama's top) - ln p(Verdict's
	// top) <= NearTie.
	NearTie float64
	// NearTieProb, when positive, also excuses a disagreement whose two
	// tokens' probabilities in llama.cpp's distribution differ by at most
	// NearTieProb. The tests of quantised models set it to twice the
	// largest probability change that quantising the activations causes in
	// either engine (Floor with Exact for Verdict, Compare with Exact's
	// logits for llama.cpp): two tokens that close can swap places by the
	// quantisation noise alone.
	NearTieProb float64
	// MaxAbs bounds max over positions and tokens of |p_Verdict - p_llama|,
	// both distributions restricted to llama.cpp's top K tokens (see
	// Compare).
	MaxAbs float64
	// MeanAbs bounds the mean over positions of max over those tokens of
	// |p_Verdict - p_llama|.
	MeanAbs float64
}

// Disagreement is a position whose most probable tokens differ.
type Disagreement struct {
	Pos           int
	Llama         int     // llama.cpp's most probable token
	Verdict       int     // Verdict's most probable token
	LlamaP        float64 // llama.cpp's probability of Llama (over its top K)
	LlamaPVerdict float64 // llama.cpp's probability of Verdict (0 when not among its top K)
	Gap           float64 // ln(LlamaP / LlamaPVerdict); +Inf when Verdict is not among llama.cpp's top K
}

// Report summarises a teacher-forced comparison.
type Report struct {
	Positions     int
	TopAgree      int // positions with the same most probable token
	Disagreements []Disagreement
	MaxAbs        float64   // max over positions and tokens of |p_V - p_L| over llama.cpp's top K
	MaxAbsPos     int       // where MaxAbs is
	MeanAbs       float64   // mean over positions of max over those tokens of |p_V - p_L|
	Worst         []float64 // per position: max over those tokens of |p_V - p_L|
	// MaxTail is the largest probability, in Verdict's full distribution,
	// of the tokens outside llama.cpp's top K: what the comparison over the
	// top K leaves out.
	MaxTail float64
	// Confident is the share of positions where Verdict's top probability
	// exceeds 0.3: with near-uniform distributions agreement would mean
	// little.
	Confident float64
	// MedianTopP is the median of Verdict's top probability.
	MedianTopP float64
	// Identical counts the positions whose two answers are equal in every
	// token and probability (CompareTops only).
	Identical int
	// FirstDiffer is the first position whose two answers are not equal
	// (CompareTops only; Positions when all are).
	FirstDiffer int
}

// TopAgreeShare is the share of positions whose most probable tokens agree.
func (r Report) TopAgreeShare() float64 { return float64(r.TopAgree) / float64(r.Positions) }

// Check returns an error that names the first criterion r fails.
func (r Report) Check(c Criteria) error {
	if r.Positions == 0 {
		return fmt.Errorf("no positions compared")
	}
	for _, d := range r.Disagreements {
		if !(d.Gap <= c.NearTie) && !(c.NearTieProb > 0 && d.LlamaP-d.LlamaPVerdict <= c.NearTieProb) {
			return fmt.Errorf("position %d: llama.cpp's top token %d (p %.6f) against Verdict's %d (llama.cpp's p %.6g): log-probability gap %.4f is not a near-tie (<= %.4f, or a probability gap <= %.4f)",
				d.Pos, d.Llama, d.LlamaP, d.Verdict, d.LlamaPVerdict, d.Gap, c.NearTie, c.NearTieProb)
		}
	}
	if r.TopAgreeShare() < c.MinTopAgree {
		return fmt.Errorf("top token agrees at %d of %d positions (%.2f%% < %.2f%%); first disagreement %+v",
			r.TopAgree, r.Positions, 100*r.TopAgreeShare(), 100*c.MinTopAgree, r.Disagreements[0])
	}
	if !(r.MaxAbs <= c.MaxAbs) {
		return fmt.Errorf("probabilities differ by up to %.3g (position %d), above the bound %.3g", r.MaxAbs, r.MaxAbsPos, c.MaxAbs)
	}
	if !(r.MeanAbs <= c.MeanAbs) {
		return fmt.Errorf("mean over positions of the largest probability difference %.3g is above the bound %.3g", r.MeanAbs, c.MeanAbs)
	}
	return nil
}

// Softmax returns the probabilities of logits, computed in float64.
func Softmax(logits []float32) []float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	p := make([]float64, len(logits))
	s := 0.0
	for i, v := range logits {
		p[i] = math.Exp(float64(v) - m)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

// argmax returns the first index of the largest value (llama.cpp's greedy
// sampler breaks ties the same way).
func argmax[T float32 | float64](x []T) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// gap is ln(p[a] / p[b]).
func gap(pa, pb float64) float64 {
	if pb <= 0 {
		return math.Inf(1)
	}
	return math.Log(pa / pb)
}

// Compare compares llama.cpp's top K tokens at each position with
// Verdict's logits. Verdict's most probable token is taken over the whole
// vocabulary; the probabilities are compared over llama.cpp's top K tokens,
// Verdict's renormalised over the same tokens (a softmax restricted to a
// set of tokens depends only on the logits of that set, so this compares
// the logits themselves, up to a common shift).
func Compare(llama [][]TokenProb, verdict [][]float32) (Report, error) {
	if len(llama) != len(verdict) {
		return Report{}, fmt.Errorf("%d llama.cpp positions against %d Verdict positions", len(llama), len(verdict))
	}
	r := Report{Positions: len(llama)}
	if len(llama) == 0 {
		return r, nil
	}
	tops := make([]float64, 0, len(llama))
	for i, top := range llama {
		if len(top) == 0 {
			return Report{}, fmt.Errorf("position %d: no llama.cpp probabilities", i)
		}
		logits := verdict[i]
		q := Softmax(logits)
		b := argmax(q)
		a := top[0].Token
		var sub []float32
		var tail float64 = 1
		for _, tp := range top {
			if tp.Token < 0 || tp.Token >= len(logits) {
				return Report{}, fmt.Errorf("position %d: llama.cpp's token %d is outside Verdict's vocabulary of %d", i, tp.Token, len(logits))
			}
			sub = append(sub, logits[tp.Token])
			tail -= q[tp.Token]
		}
		qs := Softmax(sub)
		if a == b {
			r.TopAgree++
		} else {
			d := Disagreement{Pos: i, Llama: a, Verdict: b, LlamaP: top[0].Prob, Gap: math.Inf(1)}
			for _, tp := range top {
				if tp.Token == b {
					d.LlamaPVerdict, d.Gap = tp.Prob, gap(top[0].Prob, tp.Prob)
				}
			}
			r.Disagreements = append(r.Disagreements, d)
		}
		worst := 0.0
		for k, tp := range top {
			worst = math.Max(worst, math.Abs(qs[k]-tp.Prob))
		}
		r.Worst = append(r.Worst, worst)
		if worst > r.MaxAbs || i == 0 {
			r.MaxAbs, r.MaxAbsPos = worst, i
		}
		r.MeanAbs += worst
		r.MaxTail = math.Max(r.MaxTail, tail)
		tops = append(tops, q[b])
		if q[b] > 0.3 {
			r.Confident++
		}
	}
	r.MeanAbs /= float64(r.Positions)
	r.Confident /= float64(r.Positions)
	r.MedianTopP = median(tops)
	return r, nil
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	for i := 1; i < len(s); i++ { // insertion sort: a few hundred values
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// TeacherForced runs Verdict over tokens as one prefill batch and returns
// the logits of every position.
func TeacherForced(e *engine.Engine, tokens []int) ([][]float32, error) {
	seq, err := e.NewSequence(len(tokens))
	if err != nil {
		return nil, err
	}
	it := &engine.Item{Seq: seq, Tokens: tokens, Logits: engine.LogitsAll}
	if err := e.Forward(it); err != nil {
		return nil, err
	}
	return it.Out, nil
}

// GreedyReport compares greedy generations.
type GreedyReport struct {
	Steps    int  // tokens llama.cpp generated
	Same     int  // leading tokens both engines generated alike
	Diverged bool // the generations differ at step Same
	// At a divergence: the two tokens and the log-probability gap between
	// them in llama.cpp's distribution (+Inf when Verdict's token is not
	// among llama.cpp's reported top tokens).
	Llama, Verdict int
	Gap            float64
}

// Check returns an error unless the generations agree up to a divergence
// at a near-tie.
func (g GreedyReport) Check(nearTie float64) error {
	if g.Steps == 0 {
		return fmt.Errorf("llama.cpp generated nothing")
	}
	if g.Diverged && !(g.Gap <= nearTie) {
		return fmt.Errorf("greedy generations differ at step %d: llama.cpp %d, Verdict %d, log-probability gap %.4f in llama.cpp's distribution is not a near-tie (<= %.4f)",
			g.Same, g.Llama, g.Verdict, g.Gap, nearTie)
	}
	return nil
}

// Greedy decodes greedily with Verdict from prompt, one token per forward
// pass, and compares each token with llama.cpp's greedy tokens gen (with
// llama.cpp's top tokens at each step), stopping at the first difference.
func Greedy(e *engine.Engine, prompt, gen []int, top [][]TokenProb) (GreedyReport, error) {
	g := GreedyReport{Steps: len(gen)}
	if len(top) != len(gen) {
		return g, fmt.Errorf("%d generated tokens with %d top lists", len(gen), len(top))
	}
	seq, err := e.NewSequence(len(prompt) + len(gen))
	if err != nil {
		return g, err
	}
	it := &engine.Item{Seq: seq, Tokens: prompt, Logits: engine.LogitsLast}
	for step, want := range gen {
		if err := e.Forward(it); err != nil {
			return g, err
		}
		got := argmax(it.Out[0])
		if got != want {
			g.Diverged, g.Llama, g.Verdict, g.Gap = true, want, got, math.Inf(1)
			if len(top[step]) > 0 {
				pa := top[step][0].Prob
				for _, tp := range top[step] {
					if tp.Token == got {
						g.Gap = gap(pa, tp.Prob)
					}
				}
			}
			return g, nil
		}
		g.Same = step + 1
		it.Tokens = []int{got}
	}
	return g, nil
}

// Floor compares Verdict with Verdict computed otherwise (Exact: the same
// weights without quantised activations), over the same token sets as
// Compare compares it with llama.cpp (llama.cpp's top K at each position):
// the noise floor of the comparison. In models whose activations are
// quantised for the matrix products (Q8_0, Q4_0, the K types, ...) it is
// far more than rounding: two engines that round anything differently end
// up about as far apart as either is from exact activations.
func Floor(llama [][]TokenProb, verdict, perturbed [][]float32) (Report, error) {
	if len(llama) != len(verdict) {
		return Report{}, fmt.Errorf("%d llama.cpp positions against %d Verdict positions", len(llama), len(verdict))
	}
	ref := make([][]TokenProb, len(llama))
	for i, top := range llama {
		sub := make([]float32, len(top))
		for k, tp := range top {
			if tp.Token < 0 || tp.Token >= len(verdict[i]) {
				return Report{}, fmt.Errorf("position %d: token %d outside the vocabulary", i, tp.Token)
			}
			sub[k] = verdict[i][tp.Token]
		}
		p := Softmax(sub)
		ref[i] = make([]TokenProb, len(top))
		for k, tp := range top {
			ref[i][k] = TokenProb{tp.Token, p[k]}
		}
		sort.SliceStable(ref[i], func(a, b int) bool { return ref[i][a].Prob > ref[i][b].Prob })
	}
	return Compare(ref, perturbed)
}

// Exact returns Verdict's logits for tokens with every quantised weight
// matrix of m replaced by an F32 copy holding exactly its dequantised values
// (m is unchanged): the same model, computed without quantising any
// activation. Against Verdict's own logits it measures the quantisation noise
// of the model's activations (see ExactFloor), which is what two engines
// whose roundings differ anywhere can be apart: in a chain of products with
// 8-bit activations, a rounding difference that moves one value across a
// quantisation boundary makes a jump of a whole quantum, the jumps that
// follow spread it, and the two results end up as far apart as two
// independent quantisations. F32 models are returned unchanged; F16 and
// BF16 matrices are converted too (exactly).
func Exact(m *model.Model, threads int, tokens []int) ([][]float32, error) {
	saved := *m
	savedLayers := append([]model.Layer(nil), m.Layers...)
	defer func() {
		layers := m.Layers
		*m = saved
		m.Layers = layers
		copy(m.Layers, savedLayers)
	}()
	conv := map[*tensor.Tensor]*tensor.Tensor{}
	f32 := func(w **tensor.Tensor) {
		if *w == nil || (*w).Type == tensor.F32 {
			return
		}
		if c, ok := conv[*w]; ok { // a tied output shares its copy
			*w = c
			return
		}
		src := *w
		c := &tensor.Tensor{Name: src.Name, Type: tensor.F32, Dims: src.Dims, Data: make([]byte, 4*src.Elements())}
		row := make([]float32, src.Cols())
		for r := 0; r < src.Rows(); r++ {
			kernels.DequantRow(src, r, row)
			off := 4 * r * len(row)
			for i, v := range row {
				binary.LittleEndian.PutUint32(c.Data[off+4*i:], math.Float32bits(v))
			}
		}
		conv[src] = c
		*w = c
	}
	f32(&m.TokenEmbd)
	f32(&m.Output)
	for l := range m.Layers {
		ly := &m.Layers[l]
		for _, w := range []**tensor.Tensor{&ly.Wq, &ly.Wk, &ly.Wv, &ly.Wo, &ly.FFNGate, &ly.FFNDown, &ly.FFNUp} {
			f32(w)
		}
	}
	e, err := engine.New(m, engine.Options{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return TeacherForced(e, tokens)
}

// CompareTops compares two of llama.cpp's teacher-forced answers over the
// same tokens (Llama.Top and a SelfRun's Top): llama.cpp against itself.
// ref plays llama.cpp's part in Compare and other Verdict's: the most
// probable tokens are each answer's first, a disagreement's gap is taken in
// ref's distribution, and the probabilities are compared over the tokens in
// both top-K lists, each answer's renormalised over them (both are softmaxes
// of logits restricted to their own top K, so this compares the logits of
// the common tokens up to a common shift, as Compare does). MaxTail is the
// largest probability either answer gives the tokens left out; Confident and
// MedianTopP are other's top probabilities (over its top K); Identical counts
// the positions whose two lists are equal, token for token and bit for bit.
func CompareTops(ref, other [][]TokenProb) (Report, error) {
	if len(ref) != len(other) {
		return Report{}, fmt.Errorf("%d positions against %d", len(ref), len(other))
	}
	r := Report{Positions: len(ref), FirstDiffer: len(ref)}
	if len(ref) == 0 {
		return r, nil
	}
	tops := make([]float64, 0, len(ref))
	for i := range ref {
		a, b := ref[i], other[i]
		if len(a) == 0 || len(b) == 0 {
			return Report{}, fmt.Errorf("position %d: no probabilities", i)
		}
		if slices.Equal(a, b) {
			r.Identical++
		} else if r.FirstDiffer == len(ref) {
			r.FirstDiffer = i
		}
		pb := make(map[int]float64, len(b))
		for _, tp := range b {
			pb[tp.Token] = tp.Prob
		}
		var sa, sb float64
		for _, tp := range a {
			if q, ok := pb[tp.Token]; ok {
				sa += tp.Prob
				sb += q
			}
		}
		if sa == 0 || sb == 0 {
			return Report{}, fmt.Errorf("position %d: no token in both top lists", i)
		}
		if a[0].Token == b[0].Token {
			r.TopAgree++
		} else {
			d := Disagreement{Pos: i, Llama: a[0].Token, Verdict: b[0].Token, LlamaP: a[0].Prob, Gap: math.Inf(1)}
			for _, tp := range a {
				if tp.Token == d.Verdict {
					d.LlamaPVerdict, d.Gap = tp.Prob, gap(a[0].Prob, tp.Prob)
				}
			}
			r.Disagreements = append(r.Disagreements, d)
		}
		worst := 0.0
		for _, tp := range a {
			if q, ok := pb[tp.Token]; ok {
				worst = math.Max(worst, math.Abs(tp.Prob/sa-q/sb))
			}
		}
		r.Worst = append(r.Worst, worst)
		if worst > r.MaxAbs || i == 0 {
			r.MaxAbs, r.MaxAbsPos = worst, i
		}
		r.MeanAbs += worst
		r.MaxTail = math.Max(r.MaxTail, math.Max(1-sa, 1-sb))
		tops = append(tops, b[0].Prob)
		if b[0].Prob > 0.3 {
			r.Confident++
		}
	}
	r.MeanAbs /= float64(r.Positions)
	r.Confident /= float64(r.Positions)
	r.MedianTopP = median(tops)
	return r, nil
}
