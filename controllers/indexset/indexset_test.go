package indexset

import (
	"reflect"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		name    string
		indexes []int32
		want    string
	}{
		{"empty", nil, ""},
		{"single", []int32{7}, "7"},
		{"run", []int32{0, 1, 2, 3}, "0-3"},
		{"run and single", []int32{7, 3, 1, 2, 0}, "0-3,7"},
		{"pairs stay ranges", []int32{4, 5, 9, 10, 12}, "4-5,9-10,12"},
		{"duplicates", []int32{2, 2, 2}, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.indexes...).String(); got != tt.want {
				t.Errorf("Of(%v).String() = %q, want %q", tt.indexes, got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		limit   int32
		want    []int32
		wantErr bool
	}{
		{"empty", "", 10, []int32{}, false},
		{"ranges", "0-3,7", 10, []int32{0, 1, 2, 3, 7}, false},
		{"unordered overlapping", "5, 1-2 ,2-3", 10, []int32{1, 2, 3, 5}, false},
		{"beyond limit", "0-10", 10, nil, true},
		{"negative", "-1", 10, nil, true},
		{"reversed", "4-2", 10, nil, true},
		{"garbage", "a-b", 10, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.text, tt.limit)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) error = %v, wantErr %v", tt.text, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := s.Sorted(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	s := Of(0, 1, 2, 10, 12, 13, 99)
	back, err := Parse(s.String(), 100)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s.String(), err)
	}
	if !reflect.DeepEqual(back.Sorted(), s.Sorted()) {
		t.Errorf("round trip of %v gave %v", s.Sorted(), back.Sorted())
	}
	if !back.Has(13) || back.Has(11) || back.Len() != 7 {
		t.Errorf("Has/Len disagree with %v", back.Sorted())
	}
}
