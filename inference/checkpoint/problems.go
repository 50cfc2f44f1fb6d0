package checkpoint

import (
	"fmt"
	"strings"
)

// ProblemKind classifies one way a checkpoint differs from what its
// inferred architecture needs.
type ProblemKind string

const (
	Missing    ProblemKind = "missing"
	Unexpected ProblemKind = "unexpected"
	BadShape   ProblemKind = "wrong shape"
	BadDType   ProblemKind = "wrong dtype"
	BadConfig  ProblemKind = "config mismatch"
)

// Problem is one finding. File and Source locate the stored tensor (Source
// is empty for config mismatches); Canonical is its diffusers name within
// Component, when known.
type Problem struct {
	Kind      ProblemKind
	Component Component
	Canonical string
	File      string
	Source    string
	Want      string
	Got       string
}

func (p Problem) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", p.Kind, p.Component)
	switch {
	case p.Canonical == "" && p.Source != "":
		fmt.Fprintf(&b, " %q", p.Source)
	case p.Canonical != "" && p.Source != "" && p.Source != p.Canonical:
		fmt.Fprintf(&b, " %q (stored as %q)", p.Canonical, p.Source)
	case p.Canonical != "":
		fmt.Fprintf(&b, " %q", p.Canonical)
	}
	if p.File != "" {
		fmt.Fprintf(&b, " in %s", p.File)
	}
	if p.Want != "" {
		fmt.Fprintf(&b, ": want %s", p.Want)
	}
	if p.Got != "" {
		fmt.Fprintf(&b, ", got %s", p.Got)
	}
	return b.String()
}

// ValidationError lists every problem found in a checkpoint at once, so a
// broken or unsupported file can be diagnosed in one run.
type ValidationError struct {
	Path     string
	Problems []Problem
}

// maxListed bounds the error text; Problems always holds everything.
const maxListed = 50

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checkpoint %s: %d problem(s):", e.Path, len(e.Problems))
	for i, p := range e.Problems {
		if i == maxListed {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Problems)-maxListed)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Count returns how many problems of the given kind were found.
func (e *ValidationError) Count(k ProblemKind) int {
	n := 0
	for _, p := range e.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}
