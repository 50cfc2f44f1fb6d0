package indexset

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Set is a set of non-negative image indexes. The zero value is empty and ready to use.
type Set struct {
	members map[int32]struct{}
}

// Of returns a set holding the given indexes.
func Of(indexes ...int32) Set {
	var s Set
	for _, i := range indexes {
		s.Add(i)
	}
	return s
}

// Add puts i in the set.
func (s *Set) Add(i int32) {
	if s.members == nil {
		s.members = make(map[int32]struct{})
	}
	s.members[i] = struct{}{}
}

// Has reports whether i is in the set.
func (s Set) Has(i int32) bool {
	_, ok := s.members[i]
	return ok
}

// Len is the number of indexes in the set.
func (s Set) Len() int { return len(s.members) }

// Sorted returns the indexes in increasing order.
func (s Set) Sorted() []int32 {
	out := make([]int32, 0, len(s.members))
	for i := range s.members {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// String writes the set as compressed ranges: runs of consecutive indexes as "first-last",
// single indexes alone, separated by commas, in increasing order ("0-3,7"). The empty set is "".
func (s Set) String() string {
	sorted := s.Sorted()
	var b strings.Builder
	for start := 0; start < len(sorted); {
		end := start
		for end+1 < len(sorted) && sorted[end+1] == sorted[end]+1 {
			end++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(sorted[start]), 10))
		if end > start {
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(int64(sorted[end]), 10))
		}
		start = end + 1
	}
	return b.String()
}

// Parse reads compressed ranges as String writes them. It accepts any order and overlapping
// ranges; limit bounds the indexes (exclusive), so a corrupted status cannot make the caller
// allocate without bound.
func Parse(text string, limit int32) (Set, error) {
	var s Set
	text = strings.TrimSpace(text)
	if text == "" {
		return s, nil
	}
	for _, part := range strings.Split(text, ",") {
		first, last, isRange := strings.Cut(strings.TrimSpace(part), "-")
		lo, err := parseIndex(first, limit)
		if err != nil {
			return Set{}, fmt.Errorf("index range %q: %w", part, err)
		}
		hi := lo
		if isRange {
			if hi, err = parseIndex(last, limit); err != nil {
				return Set{}, fmt.Errorf("index range %q: %w", part, err)
			}
			if hi < lo {
				return Set{}, fmt.Errorf("index range %q: end %d is before start %d", part, hi, lo)
			}
		}
		for i := lo; i <= hi; i++ {
			s.Add(i)
		}
	}
	return s, nil
}

func parseIndex(text string, limit int32) (int32, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("expected a non-negative integer, got %q", text)
	}
	if n < 0 || int32(n) >= limit {
		return 0, fmt.Errorf("index %d is outside [0, %d)", n, limit)
	}
	return int32(n), nil
}
