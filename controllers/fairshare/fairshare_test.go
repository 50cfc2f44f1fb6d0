package fairshare

import (
	"reflect"
	"testing"
)

func TestShares(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int
		demands  []Demand
		want     []int
	}{
		{"alone: all it asks for, up to the capacity", 8, []Demand{{"a", "huge", 2000}}, []int{8}},
		{"a small job behind a huge one in another namespace", 8, []Demand{{"a", "huge", 2000}, {"b", "small", 4}}, []int{4, 4}},
		{"a tiny job leaves the rest to the huge one", 8, []Demand{{"a", "huge", 2000}, {"b", "one", 1}}, []int{7, 1}},
		{"namespaces first, then jobs", 12, []Demand{{"a", "x", 100}, {"a", "y", 100}, {"b", "z", 100}}, []int{3, 3, 6}},
		{"a remainder goes to the first namespace", 5, []Demand{{"b", "j", 10}, {"a", "j", 10}}, []int{3, 2}},
		{"and to the first job of a namespace", 3, []Demand{{"a", "y", 10}, {"b", "z", 1}, {"a", "x", 10}}, []int{1, 1, 1}},
		{"the oldest jobs first when slots are fewer than jobs", 2, []Demand{{"a", "old", 4}, {"b", "mid", 4}, {"c", "new", 4}}, []int{1, 1, 0}},
		{"unused share goes to the others", 10, []Demand{{"a", "x", 1}, {"b", "y", 2}, {"c", "z", 100}}, []int{1, 2, 7}},
		{"more capacity than demand", 100, []Demand{{"a", "x", 3}, {"b", "y", 4}}, []int{3, 4}},
		{"no capacity", 0, []Demand{{"a", "x", 3}}, []int{0}},
		{"no demand", 4, []Demand{{"a", "x", 0}, {"a", "y", -2}}, []int{0, 0}},
		{"200 small jobs on 16 slots", 16, manySmall(200), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shares := Shares(tc.capacity, tc.demands)
			if len(shares) != len(tc.demands) {
				t.Fatalf("%d shares for %d demands", len(shares), len(tc.demands))
			}
			got := make([]int, len(shares))
			total := 0
			for i, s := range shares {
				if s.Namespace != tc.demands[i].Namespace || s.Job != tc.demands[i].Job {
					t.Errorf("share %d is for %s/%s, want %s/%s", i, s.Namespace, s.Job, tc.demands[i].Namespace, tc.demands[i].Job)
				}
				got[i] = s.Slots
				total += s.Slots
			}
			if total > max(tc.capacity, 0) {
				t.Errorf("shares %v add up to %d, more than the capacity %d", got, total, tc.capacity)
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("shares %v, want %v", got, tc.want)
			}
			if tc.want == nil {
				// 16 slots over 200 jobs of 4: the 16 oldest get one each.
				for i, s := range got {
					if want := map[bool]int{true: 1, false: 0}[i < 16]; s != want {
						t.Errorf("job %d got %d slots, want %d", i, s, want)
					}
				}
			}
		})
	}
}

func manySmall(n int) []Demand {
	out := make([]Demand, n)
	for i := range out {
		out[i] = Demand{Namespace: "ns", Job: string(rune('a'+i%26)) + string(rune('a'+i/26)), Slots: 4}
	}
	return out
}
