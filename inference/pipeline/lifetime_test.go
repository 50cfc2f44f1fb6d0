package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/checkpoint"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// accountingBackend is the CPU backend with a device's bookkeeping: it
// tracks every live activation and loaded weight, catches releases of
// tensors that are not live, and runs out of memory past a budget, as a
// GPU backend would.
type accountingBackend struct {
	backend.Backend
	// budget bounds the live activation bytes; zero means unlimited.
	budget int64
	// failLoadAfter makes the load after that many succeed fail with an
	// out-of-memory error; zero never fails.
	failLoadAfter int

	live, peak int64
	alive      map[backend.Tensor]int64
	weights    map[any]bool
	loads      int
	misuse     []string
	// released are freed activations, to recognise a second release.
	released []backend.Tensor
}

func newAccounting(t *testing.T) *accountingBackend {
	return &accountingBackend{Backend: newBackend(t), alive: map[backend.Tensor]int64{}, weights: map[any]bool{}}
}

func (a *accountingBackend) Alloc(shape ...int) (backend.Tensor, error) {
	n, err := tensor.NumElements(shape)
	if err != nil {
		return nil, err
	}
	bytes := 4 * int64(n)
	if a.budget > 0 && a.live+bytes > a.budget {
		return nil, &backend.OutOfMemoryError{What: fmt.Sprintf("activation %v", shape), Bytes: bytes, Device: "test device"}
	}
	t, err := a.Backend.Alloc(shape...)
	if err != nil {
		return nil, err
	}
	a.alive[t] = bytes
	a.live += bytes
	a.peak = max(a.peak, a.live)
	return t, nil
}

func (a *accountingBackend) Release(t backend.Tensor) {
	if t == nil {
		return
	}
	bytes, ok := a.alive[t]
	if !ok {
		// Views and weights may be released as no-ops; anything else
		// is a double release.
		if h, isHost := t.(*tensor.Tensor); isHost && a.isReleased(t) {
			a.misuse = append(a.misuse, fmt.Sprintf("released %v twice", h.Shape))
		}
		return
	}
	delete(a.alive, t)
	a.live -= bytes
	a.released = append(a.released, t)
}

func (a *accountingBackend) isReleased(t backend.Tensor) bool {
	for _, r := range a.released {
		if r == t {
			return true
		}
	}
	return false
}

func (a *accountingBackend) load(w any, err error) error {
	if err != nil {
		return err
	}
	a.loads++
	if a.failLoadAfter > 0 && a.loads > a.failLoadAfter {
		return &backend.OutOfMemoryError{What: "weight", Bytes: 1 << 20, Device: "test device"}
	}
	a.weights[w] = true
	return nil
}

func (a *accountingBackend) LoadTensor(r tensor.Raw) (backend.Tensor, error) {
	t, err := a.Backend.LoadTensor(r)
	if err := a.load(t, err); err != nil {
		return nil, err
	}
	return t, nil
}

func (a *accountingBackend) LoadLinear(w tensor.Raw, b *tensor.Raw) (backend.Linear, error) {
	l, err := a.Backend.LoadLinear(w, b)
	if err := a.load(l, err); err != nil {
		return nil, err
	}
	return l, nil
}

func (a *accountingBackend) LoadConv2D(w tensor.Raw, b *tensor.Raw, stride int) (backend.Conv2D, error) {
	c, err := a.Backend.LoadConv2D(w, b, stride)
	if err := a.load(c, err); err != nil {
		return nil, err
	}
	return c, nil
}

func (a *accountingBackend) Unload(ws ...any) {
	for _, w := range ws {
		if w == nil {
			continue
		}
		if !a.weights[w] {
			a.misuse = append(a.misuse, fmt.Sprintf("unloaded %T that is not loaded", w))
		}
		delete(a.weights, w)
	}
	a.Backend.Unload(ws...)
}

func TestGenerateReleasesEveryActivationAndWeight(t *testing.T) {
	a := newAccounting(t)
	p, err := Open(testModels[checkpoint.Diffusers], a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Generate(context.Background(), baseRequest(), Hooks{Embeddings: func(*tensor.Tensor) {}}); err != nil {
		t.Fatal(err)
	}
	if a.live != 0 || len(a.alive) != 0 {
		t.Errorf("%d activations (%d bytes) still live after a generation", len(a.alive), a.live)
	}
	// Each network is dropped when its phase ends.
	if len(a.weights) != 0 {
		t.Errorf("%d weights still loaded after a generation without KeepModels", len(a.weights))
	}
	if len(a.misuse) != 0 {
		t.Errorf("lifetime errors: %s", strings.Join(a.misuse, "; "))
	}
	if a.peak == 0 {
		t.Error("no activation was allocated through the backend")
	}
}

func TestActivationOutOfMemoryIsReturned(t *testing.T) {
	a := newAccounting(t)
	p, err := Open(testModels[checkpoint.Diffusers], a, Options{KeepModels: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Generate(context.Background(), baseRequest(), Hooks{}); err != nil {
		t.Fatal(err)
	}
	// Half the working set the generation needed cannot fit.
	a.budget = a.peak / 2
	_, err = p.Generate(context.Background(), baseRequest(), Hooks{})
	var oom *backend.OutOfMemoryError
	if !errors.As(err, &oom) || !strings.Contains(err.Error(), "activation") {
		t.Fatalf("got %v, want an OutOfMemoryError naming the activation", err)
	}
	if a.live != 0 {
		t.Errorf("%d bytes of activations leaked by the failed generation", a.live)
	}
}

func TestWeightOutOfMemoryNamesTheTensor(t *testing.T) {
	a := newAccounting(t)
	a.failLoadAfter = 10
	p, err := Open(testModels[checkpoint.Diffusers], a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Generate(context.Background(), baseRequest(), Hooks{})
	var oom *backend.OutOfMemoryError
	var me *ModelError
	if !errors.As(err, &oom) || !errors.As(err, &me) || !strings.Contains(err.Error(), "text_model.") {
		t.Fatalf("got %v, want an OutOfMemoryError inside a ModelError naming the text encoder's tensor", err)
	}
	// The weights loaded before the failure are freed.
	if len(a.weights) != 0 {
		t.Errorf("%d weights still loaded after the failed load", len(a.weights))
	}
}
