package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/verdictnet/verdict/internal/gguf"
	"github.com/verdictnet/verdict/internal/kernels"
	"github.com/verdictnet/verdict/internal/llama2c"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/synth"
	"github.com/verdictnet/verdict/internal/tensor"
	"github.com/verdictnet/verdict/internal/tokenizer"
)

func init() {
	register(&command{Name: "model", Summary: "inspect model files, write synthetic models, compute model ids", Run: runModel})
}

const modelUsage = `usage:
  verdict model inspect PATH [--tokenizer PATH]
  verdict model synth --preset PRESET --vocab VOCAB.gguf|builtin --seed S --out FILE.gguf [--type TYPE] [--force]
  verdict model id PATH [--tokenizer PATH] [--manifest] [--kv-cache f16]`

func runModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("model: missing subcommand; %s", strings.ReplaceAll(modelUsage, "\n", ";"))
	}
	switch args[0] {
	case "inspect":
		return runModelInspect(args[1:], stdout, stderr)
	case "synth":
		return runModelSynth(args[1:], stdout, stderr)
	case "id":
		return runModelID(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, modelUsage)
		return nil
	}
	return fmt.Errorf("model: unknown subcommand %q (inspect, synth, id)", args[0])
}

func runModelInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model inspect", stderr)
	tok := fs.String("tokenizer", "", "tokenizer file (default: from the GGUF, or tok<vocab>.bin / tokenizer.bin beside a llama2.c checkpoint)")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("model inspect: usage: verdict model inspect PATH [--tokenizer PATH]")
	}
	path := fs.Arg(0)
	m, err := model.Load(path, *tok)
	if err != nil {
		// A GGUF without tensors holds only a vocabulary: show that.
		if f, ferr := gguf.Open(path); ferr == nil {
			defer f.Close()
			if len(f.Tensors) == 0 {
				return inspectVocabOnly(stdout, path, f)
			}
			// A model whose tokenizer Verdict cannot read: show the
			// model and say what is wrong with the tokenizer.
			if *tok == "" {
				if vm, merr := model.FromGGUF(f, false); merr == nil && vm.Check() == nil {
					if _, verr := model.VocabFromGGUF(f); verr != nil {
						vm.Path = path
						w := bufio.NewWriter(stdout)
						writeInspect(w, vm, f)
						fmt.Fprintf(w, "\ntokenizer:\n  not usable:    %v\n", verr)
						return w.Flush()
					}
				}
			}
		}
		return fmt.Errorf("model inspect: %w", err)
	}
	defer m.Close()
	var extra *gguf.File
	if m.Format == "gguf" {
		if extra, err = gguf.Open(path); err != nil {
			return fmt.Errorf("model inspect: %w", err)
		}
		defer extra.Close()
	}
	w := bufio.NewWriter(stdout)
	writeInspect(w, m, extra)
	return w.Flush()
}

// writeInspect prints what is known about a loaded model. f, when not nil,
// is the GGUF file the model came from.
func writeInspect(w io.Writer, m *model.Model, f *gguf.File) {
	c := m.Config
	fmt.Fprintf(w, "file:            %s\n", m.Path)
	switch {
	case f != nil:
		fmt.Fprintf(w, "format:          GGUF v%d (alignment %d, %d metadata keys, %d tensors)\n", f.Version, f.Alignment, len(f.KV), len(f.Tensors))
	default:
		version := "legacy v0 (7-integer header)"
		if hdr, err := readPrefix(m.Path, 4); err == nil && llama2c.IsV1(hdr) {
			version = "v1 (\"ak42\" header)"
		}
		fmt.Fprintf(w, "format:          llama2.c checkpoint, %s\n", version)
	}
	fmt.Fprintf(w, "architecture:    %s\n", c.Arch)
	fmt.Fprintf(w, "dim:             %d\n", c.Dim)
	fmt.Fprintf(w, "hidden:          %d\n", c.Hidden)
	fmt.Fprintf(w, "layers:          %d\n", c.Layers)
	fmt.Fprintf(w, "heads:           %d\n", c.Heads)
	fmt.Fprintf(w, "kv heads:        %d\n", c.KVHeads)
	fmt.Fprintf(w, "head dim:        %d\n", c.HeadDim())
	fmt.Fprintf(w, "q dim:           %d\n", c.QDim())
	fmt.Fprintf(w, "kv dim:          %d\n", c.KVDim())
	fmt.Fprintf(w, "vocab:           %d\n", c.Vocab)
	source := "max_seq_len in the checkpoint header"
	if f != nil {
		source = c.Arch + ".context_length"
	}
	fmt.Fprintf(w, "context length:  %d (%s)\n", c.ContextLen, source)
	fmt.Fprintf(w, "rope:            %s (%s)\n", c.Rope(), map[model.RopeType]string{model.RopeNorm: "adjacent pairs", model.RopeNeox: "halves of each head"}[c.Rope()])
	fmt.Fprintf(w, "rope theta:      %s\n", strconv.FormatFloat(float64(c.RopeTheta), 'g', -1, 32))
	if c.FreqFactors {
		fs := kernels.F32Row(m.RopeFreqs.Data)
		fmt.Fprintf(w, "rope factors:    %d (rope_freqs.weight, %g .. %g)\n", len(fs), slices.Min(fs), slices.Max(fs))
	}
	var feats []string
	if c.QKVBias {
		feats = append(feats, "Q/K/V biases")
	}
	if c.QKNorm {
		feats = append(feats, "Q/K norms")
	}
	if len(feats) > 0 {
		fmt.Fprintf(w, "attention:       %s\n", strings.Join(feats, ", "))
	}
	fmt.Fprintf(w, "rms norm eps:    %s\n", strconv.FormatFloat(float64(c.NormEps), 'g', -1, 32))
	tied := "no"
	if m.Output == m.TokenEmbd {
		tied = "yes (output = token embedding)"
	}
	fmt.Fprintf(w, "tied classifier: %s\n", tied)
	var params, bytes int64
	types := map[tensor.Type]int{}
	typeBytes := map[tensor.Type]int64{}
	ts := m.Tensors()
	for _, t := range ts {
		params += int64(t.Elements())
		bytes += int64(len(t.Data))
		types[t.Type]++
		typeBytes[t.Type] += int64(len(t.Data))
	}
	fmt.Fprintf(w, "parameters:      %d (%d bytes of weights, %.2f bits per weight)\n", params, bytes, 8*float64(bytes)/float64(max(params, 1)))
	var tl, tb []string
	for t := tensor.Type(0); t < 64; t++ {
		if types[t] > 0 {
			tl = append(tl, fmt.Sprintf("%s x%d", t, types[t]))
			tb = append(tb, fmt.Sprintf("%s %d", t, typeBytes[t]))
		}
	}
	fmt.Fprintf(w, "tensor types:    %s\n", strings.Join(tl, ", "))
	fmt.Fprintf(w, "bytes by type:   %s\n", strings.Join(tb, ", "))
	if f != nil {
		fmt.Fprintln(w, "\nmetadata:")
		for _, kv := range f.KV {
			fmt.Fprintf(w, "  %-40s %s\n", kv.Key, kv.Value.Format(4))
		}
	}
	fmt.Fprintln(w, "\ntensors:")
	fmt.Fprintf(w, "  %-28s %-5s %-14s %s\n", "name", "type", "shape", "bytes")
	for _, t := range ts {
		dims := make([]string, len(t.Dims))
		for i, d := range t.Dims {
			dims[i] = strconv.Itoa(d)
		}
		fmt.Fprintf(w, "  %-28s %-5s %-14s %d\n", t.Name, t.Type, "["+strings.Join(dims, ", ")+"]", len(t.Data))
	}
	if m.Vocab != nil {
		writeVocab(w, m.Vocab)
	}
	if f != nil {
		writeTemplate(w, f)
	}
}

// writeTemplate prints the facts of a GGUF's chat template: its length,
// its hash and which roles and features it mentions.
func writeTemplate(w io.Writer, f *gguf.File) {
	fmt.Fprintln(w, "\nchat template:")
	tm, err := f.String("tokenizer.chat_template")
	if err != nil {
		fmt.Fprintln(w, "  none (tokenizer.chat_template absent)")
		return
	}
	sum := sha256.Sum256([]byte(tm))
	fmt.Fprintf(w, "  length:        %d bytes, %d lines\n", len(tm), strings.Count(tm, "\n")+1)
	fmt.Fprintf(w, "  sha256:        %x\n", sum)
	var marks []string
	for _, k := range []string{"<|im_start|>", "<|start_header_id|>", "<|eot_id|>", "[INST]", "<think>", "tools", "add_generation_prompt", "system"} {
		if strings.Contains(tm, k) {
			marks = append(marks, k)
		}
	}
	fmt.Fprintf(w, "  mentions:      %s\n", strings.Join(marks, " "))
	for _, k := range []string{"tokenizer.ggml.model", "tokenizer.ggml.pre"} {
		if v, err := f.String(k); err == nil {
			fmt.Fprintf(w, "  %-14s %s\n", strings.TrimPrefix(k, "tokenizer.ggml.")+":", v)
		}
	}
}

// inspectVocabOnly prints a GGUF that has metadata but no tensors.
func inspectVocabOnly(stdout io.Writer, path string, f *gguf.File) error {
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "file:            %s\n", path)
	fmt.Fprintf(w, "format:          GGUF v%d, no tensors (vocabulary only)\n", f.Version)
	fmt.Fprintln(w, "\nmetadata:")
	for _, kv := range f.KV {
		fmt.Fprintf(w, "  %-40s %s\n", kv.Key, kv.Value.Format(4))
	}
	v, err := model.VocabFromGGUF(f)
	if err != nil {
		w.Flush()
		return fmt.Errorf("model inspect: %s: %w", path, err)
	}
	writeVocab(w, v)
	writeTemplate(w, f)
	return w.Flush()
}

func writeVocab(w io.Writer, v *tokenizer.Vocab) {
	piece := func(id int) string {
		if id < 0 || id >= len(v.Tokens) {
			return "none"
		}
		return fmt.Sprintf("%d %q", id, v.Tokens[id])
	}
	fmt.Fprintln(w, "\ntokenizer:")
	fmt.Fprintf(w, "  flavor:        %s\n", v.Flavor)
	fmt.Fprintf(w, "  tokens:        %d\n", len(v.Tokens))
	fmt.Fprintf(w, "  bos:           %s\n", piece(v.BOS))
	fmt.Fprintf(w, "  eos:           %s\n", piece(v.EOS))
	fmt.Fprintf(w, "  unk:           %s\n", piece(v.UNK))
	fmt.Fprintf(w, "  add bos:       %v\n", v.AddBOS)
	if v.AddEOS {
		fmt.Fprintf(w, "  add eos:       %v\n", v.AddEOS)
	}
	if v.Flavor == tokenizer.BPE {
		pre := v.Pre
		if pre == "" {
			pre = "default"
		}
		fmt.Fprintf(w, "  pre-tokenizer: %s\n", pre)
		fmt.Fprintf(w, "  merges:        %d\n", mergeCount(v))
	}
	if tok, err := tokenizer.New(v); err == nil && v.Flavor != tokenizer.Llama2C {
		var eog []string
		for _, id := range tok.EOG() {
			eog = append(eog, piece(id))
		}
		fmt.Fprintf(w, "  end of gen.:   %s\n", strings.Join(eog, ", "))
	}
	if v.MaxTokenLen > 0 {
		fmt.Fprintf(w, "  max token len: %d\n", v.MaxTokenLen)
	}
	if v.Types != nil {
		counts := make([]int, tokenizer.Byte+1)
		for _, t := range v.Types {
			if t >= 0 && int(t) < len(counts) {
				counts[t]++
			}
		}
		names := []string{"undefined", "normal", "unknown", "control", "user-defined", "unused", "byte"}
		var parts []string
		for i, n := range counts {
			if n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", names[i], n))
			}
		}
		fmt.Fprintf(w, "  token types:   %s\n", strings.Join(parts, ", "))
	}
	var samples []string
	n := len(v.Tokens)
	for _, id := range []int{0, 1, 2, 3, n / 2, n/2 + 1, n - 2, n - 1} {
		if id >= 0 && id < n {
			samples = append(samples, fmt.Sprintf("%d:%q", id, v.Tokens[id]))
		}
	}
	fmt.Fprintf(w, "  samples:       %s\n", strings.Join(samples, " "))
}

// readPrefix returns up to n bytes from the start of a file.
func readPrefix(path string, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	k, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b[:k], nil
}

func runModelSynth(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model synth", stderr)
	preset := fs.String("preset", "", "model shape: "+strings.Join(synth.Presets(), ", ")+" (required)")
	vocab := fs.String("vocab", "", "GGUF whose tokenizer and chat template are copied, e.g. ../shared/tokenizers/derived/ggml-vocab-qwen2.derived-from-qwen3.gguf, or \"builtin\" (required)")
	seed := fs.Uint64("seed", 0, "random seed; the same seed gives the same file")
	out := fs.String("out", "", "output file (required)")
	typ := fs.String("type", "f32", "weight type: "+strings.Join(synth.Types(), ", ")+" (norms and biases stay f32)")
	force := fs.Bool("force", false, "overwrite an existing output file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("model synth: unexpected argument %q", fs.Arg(0))
	}
	if *preset == "" || *vocab == "" || *out == "" {
		return fmt.Errorf("model synth: --preset, --vocab and --out are required")
	}
	if _, err := synth.LookupPreset(*preset); err != nil {
		return fmt.Errorf("model synth: %w", err)
	}
	if !slices.ContainsFunc(synth.Types(), func(t string) bool { return strings.EqualFold(t, *typ) }) {
		return fmt.Errorf("model synth: unknown --type %q (%s)", *typ, strings.Join(synth.Types(), ", "))
	}
	if _, err := os.Lstat(*out); err == nil && !*force {
		return fmt.Errorf("model synth: %s exists; refusing to overwrite it without --force", *out)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("model synth: %w", err)
	}
	o := synth.Options{Preset: *preset, Vocab: *vocab, Seed: *seed, Type: strings.ToLower(*typ)}
	if o.Vocab == "builtin" {
		o.Vocab = ""
	}
	if err := synth.WriteFile(*out, o); err != nil {
		return fmt.Errorf("model synth: %w", err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		return fmt.Errorf("model synth: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes): preset %s, %s weights, seed %d\n", *out, st.Size(), *preset, o.Type, *seed)
	return nil
}

// mergeCount is the number of BPE merges of v.
func mergeCount(v *tokenizer.Vocab) int {
	if v.Merges == nil {
		return 0
	}
	return v.Merges.Len()
}
