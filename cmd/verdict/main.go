// Command verdict runs deterministic, verifiable LLM inference and the
// Verdict network around it. Run `verdict help` for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one `verdict` subcommand. Files in this package register their
// commands from init functions.
type command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	// HoldsModel marks the commands that load a model and run it: they
	// collect garbage more often (modelGC) and take the executable's pages
	// that package initialisation touched out of their resident set
	// (releaseStartPages).
	HoldsModel bool
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.Name]; dup {
		panic("verdict: command registered twice: " + c.Name)
	}
	commands[c.Name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "verdict: unknown command %q (run `verdict help`)\n", args[0])
		return 2
	}
	if c.HoldsModel {
		modelGC()
		// Best effort: where it fails the pages just stay resident.
		releaseStartPages()
	}
	err := c.Run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(exitError)):
		var e exitError
		errors.As(err, &e)
		if e.msg != "" {
			fmt.Fprintf(stderr, "verdict: %s\n", oneLine(e.msg))
		}
		return e.code
	default:
		fmt.Fprintf(stderr, "verdict: %s\n", oneLine(err.Error()))
		return 1
	}
}

// exitError lets a command choose its exit status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

func usage(w io.Writer) {
	fmt.Fprintln(w, "verdict: verifiable, deterministic LLM inference")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: verdict <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `verdict <command> -h` for the flags of a command.")
}

// newFlagSet returns a flag set that reports errors instead of exiting.
// Parse it with parseFlags.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("verdict "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args with fs. -h or --help prints fs's usage and
// returns flag.ErrHelp (exit 0). A flag that is not defined, lacks its
// value or has a bad one is an exitError (status 2) of one line naming
// the command and the flag, printed by run: the flag package itself
// printed its error and then the whole usage, and run the error again.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(out, "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
		return err
	default:
		return exitError{code: 2, msg: fmt.Sprintf("%s: %v", strings.TrimPrefix(fs.Name(), "verdict "), err)}
	}
}
