package main

import (
	"context"
	"fmt"
	"io"

	"github.com/verdictnet/verdict/internal/engine"
	"github.com/verdictnet/verdict/internal/model"
	"github.com/verdictnet/verdict/internal/modelid"
)

// runModelID implements `verdict model id PATH [--tokenizer PATH]
// [--kv-cache f16]`; the `model` command routes its `id` subcommand here.
// The id is printed on the last line: under engine.SpecVersion, or with
// --kv-cache f16 under engine.SpecKV16 (the id a worker run with
// --kv-cache f16 serves).
func runModelID(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("model id", stderr)
	tok := fs.String("tokenizer", "", "tokenizer file (llama2.c checkpoints)")
	manifest := fs.Bool("manifest", false, "print the manifest (leaf 0) before the id")
	var kv engine.KVType
	fs.Var(kvFlag{&kv}, "kv-cache", "the id under the spec of this key/value cache precision: f32, or f16 ("+engine.SpecKV16+", the id of workers run with --kv-cache f16)")
	if err := parseFlags(fs, reorderFlags(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("model id: usage: verdict model id PATH [--tokenizer PATH] [--manifest] [--kv-cache f16]")
	}
	m, err := model.Load(fs.Arg(0), *tok)
	if err != nil {
		return fmt.Errorf("model id: %w", err)
	}
	defer m.Close()
	c, err := modelid.ComputeSpec(m, kv.Spec())
	if err != nil {
		return fmt.Errorf("model id: %s: %w", fs.Arg(0), err)
	}
	if *manifest {
		stdout.Write(c.Manifest)
	}
	fmt.Fprintln(stdout, c.Root)
	return nil
}

// reorderFlags moves flags after positional arguments to the front, so that
// `verdict model id PATH --tokenizer T` works with the flag package. A
// lone "--" ends flag parsing as usual.
func reorderFlags(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			if !containsEq(a) && i+1 < len(args) && !isBoolFlag(a) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}

func containsEq(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return true
		}
	}
	return false
}

// isBoolFlag lists the boolean flags of the proofs commands.
func isBoolFlag(a string) bool {
	switch a {
	case "-manifest", "--manifest", "-json", "--json":
		return true
	}
	return false
}
