package vulkan

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/sdfleet/sdfleet/inference/backend"
	"github.com/sdfleet/sdfleet/inference/backend/ref"
	"github.com/sdfleet/sdfleet/inference/backend/vulkan/vk"
	"github.com/sdfleet/sdfleet/inference/tensor"
)

// A ResNet-like chain recorded as one command buffer: one submit for the
// whole chain (the Read), barriers only between dependent commands, and
// the second run reusing the first run's activation buffers.
func TestChainIsOneSubmitAndReusesActivations(t *testing.T) {
	d := device(t)
	rng := rand.New(rand.NewPCG(9, 9))
	x, hx := activation(t, d, rng, 1, 8, 8, 32)
	conv, hconv := weight(t, d, rng, 0.05, 32, 32, 3, 3)
	scale, hscale := weight(t, d, rng, 1, 32)
	shift, hshift := weight(t, d, rng, 1, 32)
	if err := d.Sync(); err != nil { // the uploads
		t.Fatal(err)
	}
	want := ref.Conv2D(ref.GroupNorm(hx, 8, hscale.Data, hshift.Data, 1e-5, backend.SiLU), hconv, nil, 1, backend.None, hx)

	run := func() (*Tensor, int) {
		h, err := d.Alloc(1, 8, 8, 32)
		if err != nil {
			t.Fatal(err)
		}
		out, err := d.Alloc(1, 8, 8, 32)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.GroupNorm(h, x, 8, scale, shift, 1e-5, backend.SiLU); err != nil {
			t.Fatal(err)
		}
		if err := d.Conv2D(out, h, conv, nil, x, 1, backend.None); err != nil {
			t.Fatal(err)
		}
		d.Release(h)
		submits := d.rec.submits
		expectClose(t, d, out, want)
		d.Release(out)
		return out, d.rec.submits - submits
	}
	live := d.pool.live
	first, n := run()
	if n != 1 {
		t.Errorf("the chain took %d submits, want 1", n)
	}
	second, _ := run()
	if first.buf != nil || second.buf != nil {
		t.Error("released tensors keep their buffers")
	}
	if d.pool.live != live {
		t.Errorf("%d pooled buffers still out after both runs", d.pool.live-live)
	}
	// Two independent dispatches need no barrier between them.
	a, _ := activation(t, d, rng, 1, 64)
	b, _ := activation(t, d, rng, 1, 64)
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	o1, o2 := output(t, d, 1, 64), output(t, d, 1, 64)
	barriers := d.rec.barriers
	if err := d.Activate(o1, a, backend.SiLU); err != nil {
		t.Fatal(err)
	}
	if err := d.Activate(o2, b, backend.SiLU); err != nil {
		t.Fatal(err)
	}
	if got := d.rec.barriers - barriers; got != 0 {
		t.Errorf("%d barriers between independent dispatches", got)
	}
	// A dependent one does.
	if err := d.Activate(a, o1, backend.SiLU); err != nil {
		t.Fatal(err)
	}
	if got := d.rec.barriers - barriers; got != 1 {
		t.Errorf("%d barriers before a dependent dispatch, want 1", got)
	}
}

// Tensors beyond maxStorageBufferRange are allocated (the kernels reach
// them through device addresses: the addressed modes of the kernel tests);
// beyond maxMemoryAllocationSize, or beyond 32-bit indexing, the error
// names the tensor and the limit.
func TestAllocBeyondTheDeviceLimits(t *testing.T) {
	d := device(t)
	n := int(d.Properties().MaxMemoryAllocationSize/2) + 1
	_, err := d.Alloc(1, n)
	if err == nil || !strings.Contains(err.Error(), "maxMemoryAllocationSize") || !strings.Contains(err.Error(), "activation [1 ") {
		t.Errorf("error %v, want one naming the activation and the limit", err)
	}
	_, err = d.Alloc(1<<16, 1<<16)
	if err == nil || !strings.Contains(err.Error(), "32 bits") {
		t.Errorf("error %v, want one saying that the kernels index with 32 bits", err)
	}
}

func TestArgumentErrors(t *testing.T) {
	d := device(t)
	rng := rand.New(rand.NewPCG(10, 10))
	x, _ := activation(t, d, rng, 2, 5, 8)
	w, _ := weight(t, d, rng, 1, 6, 7)
	dst := output(t, d, 2, 5, 6)
	x2 := output(t, d, 2, 5, 8)
	for name, err := range map[string]error{
		"takes 7":  d.MatMul(dst, x, w, nil, nil, backend.None),
		"3 heads":  d.Attention(x2, x, x, x, backend.AttentionParams{Heads: 3}),
		"groups":   d.GroupNorm(x, x, 3, w, w, 1e-5, backend.None),
		"differ":   d.Axpby(dst, 1, x, 1, x),
		"a weight": d.Activate(w, w, backend.SiLU),
		"share a dtype": func() error {
			prev, _ := d.SetActivationDType(tensor.F32)
			wide := output(t, d, 2, 5, 8)
			_, _ = d.SetActivationDType(prev)
			return d.Axpby(x2, 1, x, 1, wide)
		}(),
		"2F":           d.GEGLU(dst, x),
		"was released": func() error { t2, _ := d.Alloc(2); d.Release(t2); return d.Activate(t2, t2, backend.None) }(),
	} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v, want one mentioning %q", err, name)
		}
	}
}

// An out-of-memory result from the driver becomes the backend's
// OutOfMemoryError naming the allocation and the device, which sdgen
// turns into its out-of-memory exit.
func TestOutOfDeviceMemoryNamesTheAllocation(t *testing.T) {
	d := device(t)
	err := d.allocError("weight F16 [1280 1280 3 3]", 29491200, &vk.Error{Call: "vkAllocateMemory", Result: vk.ErrorOutOfDeviceMemory})
	var oom *backend.OutOfMemoryError
	if !errors.As(err, &oom) || oom.What != "weight F16 [1280 1280 3 3]" || oom.Device != d.Name() || oom.Bytes != 29491200 {
		t.Fatalf("error %#v, want an OutOfMemoryError naming the weight and the device", err)
	}
	if !strings.Contains(err.Error(), "VK_ERROR_OUT_OF_DEVICE_MEMORY") {
		t.Errorf("error %q does not say what the driver returned", err)
	}
}
