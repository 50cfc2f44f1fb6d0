package controllers

import (
	"errors"
	"sync"
	"testing"
)

func TestSlowStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n         int
		failAt    int // the call that fails; -1: none
		wantCalls int
	}{
		{"nothing to create", 0, -1, 0},
		{"all succeed", 500, -1, 500},
		{"the first fails: one request", 500, 0, 1},
		// Batches 1, 2, 4, 8: call 10 is in the fourth batch (7..14), which completes.
		{"a failure ends after its batch", 500, 10, 15},
		{"the last fails", 7, 6, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := map[int]bool{}
			got := slowStart(tc.n, 4, func(i int) error {
				mu.Lock()
				defer mu.Unlock()
				if calls[i] {
					t.Errorf("call %d made twice", i)
				}
				calls[i] = true
				if i == tc.failAt {
					return errors.New("refused")
				}
				return nil
			})
			if got != tc.wantCalls || len(calls) != tc.wantCalls {
				t.Errorf("slowStart made %d calls (reported %d), want %d", len(calls), got, tc.wantCalls)
			}
			for i := range tc.wantCalls {
				if !calls[i] {
					t.Errorf("call %d not made: calls must come in order of the plans", i)
				}
			}
		})
	}
}
