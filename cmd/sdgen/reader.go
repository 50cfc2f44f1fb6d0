package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sdfleet/sdfleet/internal/imagestream"
)

// The two commands of a reader pod (package imagestream): kubectl sdfleet reads a job's PNGs
// from its output volume with them when no gateway serves the images.
var (
	holdCommand = command{
		name:    "hold",
		summary: "wait, doing nothing, until stopped or --for has passed (a reader pod's main process)",
		run:     runHold,
	}
	exportCommand = command{
		name:    "export",
		summary: "write files of a folder to standard output as a tar stream (what kubectl sdfleet reads)",
		run:     runExport,
	}
)

func runHold(e *env, args []string) error {
	fs := newFlagSet(e, "hold", imagestream.FlagHoldFor+" DURATION")
	d := fs.Duration(imagestream.FlagHoldFor[2:], 10*time.Minute, "how long to wait at most")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if *d <= 0 {
		return usageError{fmt.Sprintf("%s %v: want a positive duration, for example 10m", imagestream.FlagHoldFor, *d)}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(stop)
	select {
	case <-stop:
	case <-time.After(*d):
	}
	return nil
}

func runExport(e *env, args []string) error {
	fs := newFlagSet(e, "export", imagestream.FlagRoot+" DIR FILE...")
	root := fs.String(imagestream.FlagRoot[2:], "", "the folder the files are named relative to")
	var help bytes.Buffer
	fs.SetOutput(&help)
	err := fs.Parse(args)
	fs.SetOutput(e.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = e.stdout.Write(help.Bytes())
		return flag.ErrHelp
	case err != nil:
		_, _ = e.stderr.Write(help.Bytes())
		return usageError{err.Error()}
	case *root == "":
		return usageError{imagestream.FlagRoot + " is required"}
	case fs.NArg() == 0:
		return usageError{"name at least one file to export"}
	}
	out := bufio.NewWriterSize(e.stdout, 256<<10)
	if err := imagestream.Write(out, *root, fs.Args()); err != nil {
		_ = out.Flush() // the files before the failing one reach the reader whole
		return err
	}
	return out.Flush()
}
