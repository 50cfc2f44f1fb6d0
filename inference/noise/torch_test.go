package noise

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
)

// torchGolden is testdata/torch_randn.json, written by hack/golden/torch_randn.py with PyTorch.
type torchGolden struct {
	Torch string `json:"torch"`
	Cases []struct {
		Seed   uint64   `json:"seed"`
		N      int      `json:"n"`
		First  []string `json:"first"`
		Last   []string `json:"last"`
		SHA256 string   `json:"sha256"`
	} `json:"cases"`
}

func TestTorchRandnBitForBit(t *testing.T) {
	data, err := os.ReadFile("testdata/torch_randn.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden torchGolden
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatalf("testdata/torch_randn.json: %v", err)
	}
	if len(golden.Cases) == 0 {
		t.Fatal("testdata/torch_randn.json has no cases")
	}
	for _, c := range golden.Cases {
		t.Run(fmt.Sprintf("seed=%d/n=%d", c.Seed, c.N), func(t *testing.T) {
			got := make([]float32, c.N)
			NewTorch(c.Seed).Fill(got)
			check := func(what string, want []string, vals []float32) {
				for i, w := range want {
					if g := fmt.Sprintf("%08x", math.Float32bits(vals[i])); g != w {
						t.Errorf("%s value %d: got %s (%v), PyTorch %s", what, i, g, vals[i], w)
					}
				}
			}
			check("first", c.First, got[:len(c.First)])
			check("last", c.Last, got[c.N-len(c.Last):])
			buf := make([]byte, 4*c.N)
			for i, v := range got {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			sum := sha256.Sum256(buf)
			if hex.EncodeToString(sum[:]) != c.SHA256 {
				t.Errorf("SHA-256 of all %d values differs from PyTorch %s", c.N, golden.Torch)
			}
		})
	}
}

func TestTorchStreamContinues(t *testing.T) {
	// Two calls continue the generator: the second 16 values differ from the first.
	g := NewTorch(3)
	a, b := make([]float32, 16), make([]float32, 16)
	g.Fill(a)
	g.Fill(b)
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	if same == len(a) {
		t.Fatal("the second Fill repeated the first")
	}
}

func TestSplitMixDeterministicAndNormal(t *testing.T) {
	const n = 200000
	a, b := make([]float32, n), make([]float32, n)
	NewSplitMix(9).Fill(a)
	NewSplitMix(9).Fill(b)
	var sum, sq float64
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d differs between two generators with the same seed", i)
		}
		if math.IsNaN(float64(a[i])) || math.IsInf(float64(a[i]), 0) {
			t.Fatalf("value %d is %v", i, a[i])
		}
		sum += float64(a[i])
		sq += float64(a[i]) * float64(a[i])
	}
	mean, variance := sum/n, sq/n-(sum/n)*(sum/n)
	// Standard errors at n = 200000: mean 0.0022, variance 0.0032; allow five.
	if math.Abs(mean) > 0.012 || math.Abs(variance-1) > 0.016 {
		t.Errorf("mean %.4f, variance %.4f: want 0 and 1", mean, variance)
	}
	c := make([]float32, 8)
	NewSplitMix(10).Fill(c)
	if c[0] == a[0] && c[1] == a[1] {
		t.Error("different seeds gave the same values")
	}
}

func TestNewByName(t *testing.T) {
	for _, name := range []string{"", SDFleet, Torch} {
		if _, err := New(name, 1); err != nil {
			t.Errorf("New(%q): %v", name, err)
		}
	}
	if _, err := New("philox", 1); err == nil {
		t.Error("unknown generator accepted")
	}
}
