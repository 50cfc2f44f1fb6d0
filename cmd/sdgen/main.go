package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/sdfleet/sdfleet/controllers/podcontract"
)

// command is one subcommand. run gets the arguments after the subcommand
// name and returns an error to report; flag.ErrHelp means help was printed.
type command struct {
	name    string
	summary string
	run     func(env *env, args []string) error
}

// env is what subcommands may touch, so tests can capture it.
type env struct {
	stdout io.Writer
	stderr io.Writer
	log    logr.Logger
}

// commands lists the subcommands in the order --help shows them.
var commands = []command{
	testmodelCommand,
	generateCommand,
	holdCommand,
	exportCommand,
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status: 0 on
// success, 1 when the command failed, 64 (EX_USAGE) for usage errors.
func run(args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr, log: funcr.New(func(prefix, kv string) {
		fmt.Fprintln(stderr, strings.TrimSpace(prefix+" "+kv))
	}, funcr.Options{})}
	if len(args) == 0 {
		usage(stderr)
		return podcontract.ExitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(e, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(exitCoder)):
			fmt.Fprintf(stderr, "sdgen %s: %v\n", c.name, err)
			return exitCodeOf(err)
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "sdgen %s: %v\n", c.name, err)
			return podcontract.ExitUsage
		default:
			fmt.Fprintf(stderr, "sdgen %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "sdgen: unknown command %q\n\n", args[0])
	usage(stderr)
	return podcontract.ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sdgen COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'sdgen COMMAND --help' for a command's flags.")
	fmt.Fprintln(w)
	fmt.Fprint(w, exitCodesHelp)
}

// usageError marks errors in how a command was invoked (exit status 64, EX_USAGE).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

// newFlagSet makes a flag set that prints its usage to the env's stdout on
// --help and returns parse errors instead of exiting.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("sdgen "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sdgen %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, sending --help output to stdout, and rejects
// positional arguments. Help is what the flag package finds in a flag's
// place: the value of a flag is never read as a flag, so
// `--prompt --help` asks for an image of "--help".
func parse(e *env, fs *flag.FlagSet, args []string) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(e.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = e.stdout.Write(out.Bytes())
		return flag.ErrHelp
	case err != nil:
		_, _ = e.stderr.Write(out.Bytes())
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments %q", fs.Args())}
	}
	return nil
}
