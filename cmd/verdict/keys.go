package main

import (
	"context"
	"fmt"
	"io"

	"github.com/verdictnet/verdict/internal/keys"
)

func init() {
	register(&command{Name: "keys", Summary: "create and show ed25519 worker keys", Run: runKeys})
}

const keysUsage = `usage:
  verdict keys new --out FILE    create an ed25519 key (worker, verifier or account); prints its address
  verdict keys show FILE         print a key file's public key and ledger address`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("keys: want a subcommand: `keys new --out FILE` or `keys show FILE`")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, keysUsage)
		return nil
	case "new":
		fs := newFlagSet("keys new", stderr)
		out := fs.String("out", "", "key file to create (mode 0600; never overwritten)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *out == "" || fs.NArg() != 0 {
			return fmt.Errorf("keys new: usage: verdict keys new --out FILE")
		}
		k, err := keys.Generate(*out)
		if err != nil {
			return fmt.Errorf("keys new: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s\naddress %s\n", *out, k.Address())
		return nil
	case "show":
		fs := newFlagSet("keys show", stderr)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("keys show: usage: verdict keys show FILE")
		}
		k, err := keys.Load(fs.Arg(0))
		if err != nil {
			return fmt.Errorf("keys show: %w", err)
		}
		fmt.Fprintf(stdout, "type ed25519\npublic_key %s\naddress %s\n", keys.Address(k.Public), k.Address())
		return nil
	}
	return fmt.Errorf("keys: unknown subcommand %q (want new or show)", args[0])
}
