package modelid

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/tensor"
)

func parseTypeName(s string) (tensor.Type, bool) {
	for _, t := range tensor.Types {
		if t.String() == s {
			return t, true
		}
	}
	return 0, false
}

// Feature words of the manifest's features line, in the order written.
const (
	featQKVBias     = "qkv_bias"
	featQKNorm      = "qk_norm"
	featFreqFactors = "rope_freqs"
)

// features lists the feature words of a configuration.
func features(c model.Config) []string {
	var fs []string
	if c.QKVBias {
		fs = append(fs, featQKVBias)
	}
	if c.QKNorm {
		fs = append(fs, featQKNorm)
	}
	if c.FreqFactors {
		fs = append(fs, featFreqFactors)
	}
	return fs
}

// atoi parses a canonical non-negative decimal (no sign, no leading zero).
func atoi(s string, max int64) (int64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || len(s) > 19 {
		return 0, fmt.Errorf("%.40q is not a canonical decimal", s)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v > max {
		return 0, fmt.Errorf("%.40q is not a number in 0..%d", s, max)
	}
	return v, nil
}

func parseF32Hex(s string) (float32, error) {
	if len(s) != 10 || s[:2] != "0x" || strings.ToLower(s) != s {
		return 0, fmt.Errorf("%.40q is not 0x and 8 lower-case hex digits", s)
	}
	v, err := strconv.ParseUint(s[2:], 16, 32)
	if err != nil {
		return 0, fmt.Errorf("%.40q: %w", s, err)
	}
	return math.Float32frombits(uint32(v)), nil
}

// ParseManifest parses leaf 0 of a model tree and computes the leaf layout.
// It checks the manifest is exactly in the form Compute writes.
func ParseManifest(b []byte) (*Layout, error) {
	if len(b) > MaxManifest {
		return nil, fmt.Errorf("manifest: %d bytes, at most %d allowed", len(b), MaxManifest)
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("manifest: does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	l := &Layout{}
	next := 0
	field := func(key string) ([]string, error) {
		if next >= len(lines) {
			return nil, fmt.Errorf("manifest: missing line %q", key)
		}
		f := strings.Split(lines[next], " ")
		if f[0] != key {
			return nil, fmt.Errorf("manifest: line %d is %.60q, want %q", next+1, lines[next], key)
		}
		next++
		return f[1:], nil
	}
	if len(lines) == 0 || lines[0] != manifestMagic {
		return nil, fmt.Errorf("manifest: first line is not %q", manifestMagic)
	}
	next = 1
	one := func(key string) (string, error) {
		f, err := field(key)
		if err != nil {
			return "", err
		}
		if len(f) != 1 || f[0] == "" {
			return "", fmt.Errorf("manifest: line %q wants one value", key)
		}
		return f[0], nil
	}
	var err error
	if l.Spec, err = one("spec"); err != nil {
		return nil, err
	}
	if l.Config.Arch, err = one("arch"); err != nil {
		return nil, err
	}
	ints := []struct {
		key string
		dst *int
	}{{"dim", &l.Config.Dim}, {"hidden", &l.Config.Hidden}, {"layers", &l.Config.Layers}, {"heads", &l.Config.Heads}, {"kv_heads", &l.Config.KVHeads}, {"vocab", &l.Config.Vocab}}
	for _, f := range ints {
		v, err := one(f.key)
		if err != nil {
			return nil, err
		}
		n, err := atoi(v, 1<<24)
		if err != nil {
			return nil, fmt.Errorf("manifest: %s: %w", f.key, err)
		}
		*f.dst = int(n)
	}
	for _, f := range []struct {
		key string
		dst *float32
	}{{"rope_theta", &l.Config.RopeTheta}, {"norm_eps", &l.Config.NormEps}} {
		v, err := one(f.key)
		if err != nil {
			return nil, err
		}
		if *f.dst, err = parseF32Hex(v); err != nil {
			return nil, fmt.Errorf("manifest: %s: %w", f.key, err)
		}
	}
	if next < len(lines) && strings.HasPrefix(lines[next], "head_dim ") {
		v, err := one("head_dim")
		if err != nil {
			return nil, err
		}
		n, err := atoi(v, 1<<12)
		if err != nil {
			return nil, fmt.Errorf("manifest: head_dim: %w", err)
		}
		l.Config.HeadSize = int(n)
	}
	if next < len(lines) && strings.HasPrefix(lines[next], "features ") {
		fs, err := field("features")
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			switch f {
			case featQKVBias:
				l.Config.QKVBias = true
			case featQKNorm:
				l.Config.QKNorm = true
			case featFreqFactors:
				l.Config.FreqFactors = true
			default:
				return nil, fmt.Errorf("manifest: unknown feature %.40q", f)
			}
		}
	}
	check := l.Config
	check.ContextLen = 1
	if err := check.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	out, err := one("output")
	if err != nil {
		return nil, err
	}
	switch out {
	case "tied":
		l.Tied = true
	case "separate":
	default:
		return nil, fmt.Errorf("manifest: output %.40q, want tied or separate", out)
	}
	chunk, err := one("chunk")
	if err != nil {
		return nil, err
	}
	if chunk != strconv.Itoa(ChunkSize) {
		return nil, fmt.Errorf("manifest: chunk size %.40q, want %d", chunk, ChunkSize)
	}
	tf, err := field("tokenizer")
	if err != nil {
		return nil, err
	}
	if len(tf) != 4 {
		return nil, fmt.Errorf("manifest: tokenizer line wants 4 values")
	}
	var tv [4]int64
	for i := range tf {
		max := int64(maxBytes)
		if i > 0 {
			max = int64(l.Config.Vocab - 1)
			if tf[i] == "none" { // a vocabulary without BOS, EOS or UNK
				tv[i] = -1
				continue
			}
		}
		if tv[i], err = atoi(tf[i], max); err != nil {
			return nil, fmt.Errorf("manifest: tokenizer: %w", err)
		}
	}
	l.BOS, l.EOS, l.UNK = int(tv[1]), int(tv[2]), int(tv[3])
	leaves := int64(1)
	l.Tokenizer = Region{Name: "tokenizer", Bytes: tv[0], First: int(leaves)}
	leaves += int64(l.Tokenizer.Leaves())
	for _, want := range model.Shapes(l.Config, l.Tied) {
		name := want.Name
		f, err := field("tensor")
		if err != nil {
			return nil, err
		}
		if len(f) != 4 || f[0] != name {
			return nil, fmt.Errorf("manifest: line %d: want `tensor %s TYPE DIMS BYTES`", next, name)
		}
		typ, ok := parseTypeName(f[1])
		if !ok {
			return nil, fmt.Errorf("manifest: tensor %s: unknown type %.20q", name, f[1])
		}
		ds := strings.Split(f[2], ",")
		if len(ds) > 4 {
			return nil, fmt.Errorf("manifest: tensor %s: %d dims", name, len(ds))
		}
		dims := make([]int, len(ds))
		for i, d := range ds {
			v, err := atoi(d, 1<<24)
			if err != nil || v == 0 {
				return nil, fmt.Errorf("manifest: tensor %s: bad dim %.20q", name, d)
			}
			dims[i] = int(v)
		}
		nb, err := atoi(f[3], maxBytes)
		if err != nil {
			return nil, fmt.Errorf("manifest: tensor %s: bytes: %w", name, err)
		}
		t := tensor.Tensor{Name: name, Type: typ, Dims: dims}
		// What model.Check asks of a file's tensor: no file's
		// manifest has another shape, or a norm of another type.
		if !t.ShapeIs(want.Dims...) {
			return nil, fmt.Errorf("manifest: tensor %s has shape %v, the configuration needs %v", name, dims, want.Dims)
		}
		if want.F32 && typ != tensor.F32 {
			return nil, fmt.Errorf("manifest: tensor %s is %s; norms, biases and frequency factors are F32", name, typ)
		}
		if err := checkSize(&t, nb); err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		r := Region{Name: name, Type: typ, Dims: dims, Bytes: nb, First: int(leaves)}
		leaves += int64(r.Leaves())
		if leaves > 1<<40 {
			return nil, fmt.Errorf("manifest: too many leaves")
		}
		l.Tensors = append(l.Tensors, r)
	}
	if next != len(lines) {
		return nil, fmt.Errorf("manifest: unexpected line %d: %.60q", next+1, lines[next])
	}
	l.Leaves = int(leaves)
	if !bytes.Equal(l.Manifest(), b) {
		return nil, fmt.Errorf("manifest: not in canonical form")
	}
	return l, nil
}

// checkSize checks that nb bytes is what the tensor's type and dims need.
func checkSize(t *tensor.Tensor, nb int64) error {
	rs, err := tensor.RowBytes(t.Type, t.Cols())
	if err != nil {
		return fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	rows := int64(1)
	for _, d := range t.Dims[1:] {
		rows *= int64(d)
		if rows > maxBytes {
			return fmt.Errorf("tensor %s: too large", t.Name)
		}
	}
	if int64(rs)*rows != nb {
		return fmt.Errorf("tensor %s: %d bytes, shape %v of %s needs %d", t.Name, nb, t.Dims, t.Type, int64(rs)*rows)
	}
	return nil
}
