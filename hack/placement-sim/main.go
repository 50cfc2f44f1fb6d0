package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "placement-sim:", err)
		os.Exit(2)
	}
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("placement-sim", flag.ContinueOnError)
	scenarioFlag := fs.String("scenario", "all", "scenario to run: one of "+fmt.Sprint(scenarioNames)+", or all")
	format := fs.String("format", "table", "output: table (for people) or json (one object per line)")
	seed := fs.Uint64("seed", 1, "seed of the random parts of the scenarios; the same seed gives the same figures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *format != "table" && *format != "json" {
		return fmt.Errorf("--format %q: want table or json", *format)
	}
	names := scenarioNames
	if *scenarioFlag != "all" {
		if _, err := newScenario(*scenarioFlag, *seed, fullSize); err != nil {
			return err
		}
		names = []string{*scenarioFlag}
	}
	rows, err := measureAll(names, *seed, fullSize)
	if err != nil {
		return err
	}
	if *format == "json" {
		return writeJSON(out, rows)
	}
	return writeTable(out, rows)
}

// measureAll runs every strategy on every named scenario.
func measureAll(names []string, seed uint64, sz sizes) ([]result, error) {
	var rows []result
	for _, name := range names {
		for _, strat := range strategyNames {
			r, err := measure(name, seed, sz, strat)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}
