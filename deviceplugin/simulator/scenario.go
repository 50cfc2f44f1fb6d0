package simulator

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// MaxGPUs bounds a scenario; no real node has more.
const MaxGPUs = 64

// DefaultProduct and DefaultMemoryMiB describe the GPU a scenario gets when it names none.
const (
	DefaultProduct   = "NVIDIA H100 80GB HBM3"
	DefaultMemoryMiB = 81920
)

// Product families of simulated GPUs: who made them, for the GPUNode's vendor and the binding.
const (
	FamilyNVIDIA = "nvidia"
	// FamilyAMD GPUs default to DefaultAMDProduct with DefaultAMDMemoryMiB and a UUID in
	// ROCm's spelling. Being simulated, they are given no device nodes.
	FamilyAMD = "amd"
)

// DefaultAMDProduct and DefaultAMDMemoryMiB describe an AMD GPU that names no product.
const (
	DefaultAMDProduct   = "AMD Instinct MI210"
	DefaultAMDMemoryMiB = 65536
)

// Scenario is the content of a simulator YAML file.
type Scenario struct {
	// GPUs are the simulated GPUs, index 0 first. An empty list simulates a node without GPUs.
	GPUs []GPU `json:"gpus"`
	// Timeline changes the load and injects failures, at offsets from the start (or reload).
	Timeline []Step `json:"timeline,omitempty"`
	// RepeatEvery, when set, restarts the timeline at this period (demo clusters keep moving).
	// It must be longer than the last step's offset.
	RepeatEvery *metav1.Duration `json:"repeatEvery,omitempty"`
}

// GPU is one simulated GPU and its starting load.
type GPU struct {
	// UUID defaults to a UUID derived from the node name and index, stable across restarts.
	UUID string `json:"uuid,omitempty"`
	// Family is nvidia (the default) or amd.
	Family string `json:"family,omitempty"`
	// Product defaults to DefaultProduct (DefaultAMDProduct in the amd family).
	Product string `json:"product,omitempty"`
	// MemoryMiB is the total memory, default DefaultMemoryMiB (DefaultAMDMemoryMiB).
	MemoryMiB uint64 `json:"memoryMiB,omitempty"`
	Load      `json:",inline"`
}

// memoryMiB is the GPU's total memory, its family's default if not given.
func (g GPU) memoryMiB() uint64 {
	switch {
	case g.MemoryMiB != 0:
		return g.MemoryMiB
	case g.Family == FamilyAMD:
		return DefaultAMDMemoryMiB
	default:
		return DefaultMemoryMiB
	}
}

// product is the GPU's product name, its family's default if not given.
func (g GPU) product() string {
	switch {
	case g.Product != "":
		return g.Product
	case g.Family == FamilyAMD:
		return DefaultAMDProduct
	default:
		return DefaultProduct
	}
}

// Load is a GPU's live values. Unset fields keep their current value (in a GPU: their default).
type Load struct {
	// MemoryUsedMiB and MemoryUsedPercent set the used memory; give at most one.
	MemoryUsedMiB      *uint64  `json:"memoryUsedMiB,omitempty"`
	MemoryUsedPercent  *float64 `json:"memoryUsedPercent,omitempty"`
	UtilizationPercent *uint32  `json:"utilizationPercent,omitempty"`
	TemperatureCelsius *uint32  `json:"temperatureCelsius,omitempty"`
	PowerWatts         *uint32  `json:"powerWatts,omitempty"`
}

// Step is one timeline entry: a load change and/or a failure, for one GPU or all.
type Step struct {
	// At is the offset from the start of the scenario (or from a control request).
	At metav1.Duration `json:"at"`
	// GPU is the index the step applies to; unset applies it to every GPU.
	GPU  *int `json:"gpu,omitempty"`
	Load `json:",inline"`
	// XID raises an Xid critical-error event with this code.
	XID *uint64 `json:"xid,omitempty"`
	// DoubleBitECC raises a double-bit ECC error event.
	DoubleBitECC bool `json:"doubleBitECC,omitempty"`
	// NVMLError makes every query of the GPU fail with this NVML return code, for example
	// GPU_IS_LOST or UNKNOWN, until a step with recover: true.
	NVMLError string `json:"nvmlError,omitempty"`
	// Recover ends an injected NVMLError.
	Recover bool `json:"recover,omitempty"`
}

// nvmlErrors are the return codes a scenario may inject, by name (without the ERROR_ prefix).
var nvmlErrors = map[string]nvml.Return{
	"UNINITIALIZED":     nvml.ERROR_UNINITIALIZED,
	"INVALID_ARGUMENT":  nvml.ERROR_INVALID_ARGUMENT,
	"NO_PERMISSION":     nvml.ERROR_NO_PERMISSION,
	"TIMEOUT":           nvml.ERROR_TIMEOUT,
	"IRQ_ISSUE":         nvml.ERROR_IRQ_ISSUE,
	"GPU_IS_LOST":       nvml.ERROR_GPU_IS_LOST,
	"RESET_REQUIRED":    nvml.ERROR_RESET_REQUIRED,
	"MEMORY":            nvml.ERROR_MEMORY,
	"NO_DATA":           nvml.ERROR_NO_DATA,
	"NOT_READY":         nvml.ERROR_NOT_READY,
	"GPU_NOT_FOUND":     nvml.ERROR_GPU_NOT_FOUND,
	"INVALID_STATE":     nvml.ERROR_INVALID_STATE,
	"DRIVER_NOT_LOADED": nvml.ERROR_DRIVER_NOT_LOADED,
	"UNKNOWN":           nvml.ERROR_UNKNOWN,
}

func parseNVMLError(name string) (nvml.Return, bool) {
	r, ok := nvmlErrors[strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "ERROR_")]
	return r, ok
}

// LoadFile reads and validates a scenario file.
func LoadFile(path string) (*Scenario, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read simulator scenario: %w", err)
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("simulator scenario %s: %w", path, err)
	}
	return sc, data, nil
}

// Parse decodes and validates a scenario. Unknown fields are errors, so a typo does not pass
// silently.
func Parse(data []byte) (*Scenario, error) {
	var sc Scenario
	if err := yaml.UnmarshalStrict(data, &sc); err != nil {
		return nil, fmt.Errorf("decode YAML: %w", err)
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Validate checks a scenario and names the first wrong field.
func (sc *Scenario) Validate() error {
	if len(sc.GPUs) > MaxGPUs {
		return fmt.Errorf("gpus: %d GPUs given, at most %d allowed", len(sc.GPUs), MaxGPUs)
	}
	seen := map[string]int{}
	for i, g := range sc.GPUs {
		field := fmt.Sprintf("gpus[%d]", i)
		if g.UUID != "" {
			if j, dup := seen[strings.ToLower(g.UUID)]; dup {
				return fmt.Errorf("%s.uuid: %q repeats gpus[%d].uuid", field, g.UUID, j)
			}
			seen[strings.ToLower(g.UUID)] = i
		}
		if g.Family != "" && g.Family != FamilyNVIDIA && g.Family != FamilyAMD {
			return fmt.Errorf("%s.family: %q is not %s or %s", field, g.Family, FamilyNVIDIA, FamilyAMD)
		}
		if err := g.Load.validate(field, g.memoryMiB()); err != nil {
			return err
		}
	}
	var last metav1.Duration
	for i, s := range sc.Timeline {
		if err := s.Validate(fmt.Sprintf("timeline[%d]", i), sc.GPUs); err != nil {
			return err
		}
		if s.At.Duration > last.Duration {
			last = s.At
		}
	}
	if sc.RepeatEvery != nil && sc.RepeatEvery.Duration <= last.Duration {
		return fmt.Errorf("repeatEvery: %s must be longer than the last timeline step (at %s)", sc.RepeatEvery.Duration, last.Duration)
	}
	return nil
}

// Validate checks one step against the GPUs it may address.
func (s *Step) Validate(field string, gpus []GPU) error {
	if s.At.Duration < 0 {
		return fmt.Errorf("%s.at: %s is negative", field, s.At.Duration)
	}
	if s.GPU != nil && (*s.GPU < 0 || *s.GPU >= len(gpus)) {
		return fmt.Errorf("%s.gpu: %d is not a GPU index (the scenario has %d GPUs)", field, *s.GPU, len(gpus))
	}
	if s.NVMLError != "" {
		if _, ok := parseNVMLError(s.NVMLError); !ok {
			return fmt.Errorf("%s.nvmlError: %q is not one of the injectable NVML errors %s", field, s.NVMLError, strings.Join(injectableErrorNames(), ", "))
		}
		if s.Recover {
			return fmt.Errorf("%s: nvmlError and recover exclude each other", field)
		}
	}
	targets := gpus
	if s.GPU != nil {
		targets = gpus[*s.GPU : *s.GPU+1]
	}
	for _, g := range targets {
		if err := s.Load.validate(field, g.memoryMiB()); err != nil {
			return err
		}
	}
	return nil
}

func (l *Load) validate(field string, memoryMiB uint64) error {
	if l.MemoryUsedMiB != nil && l.MemoryUsedPercent != nil {
		return fmt.Errorf("%s: give memoryUsedMiB or memoryUsedPercent, not both", field)
	}
	if l.MemoryUsedMiB != nil && *l.MemoryUsedMiB > memoryMiB {
		return fmt.Errorf("%s.memoryUsedMiB: %d exceeds the GPU's %d MiB", field, *l.MemoryUsedMiB, memoryMiB)
	}
	if l.MemoryUsedPercent != nil && (*l.MemoryUsedPercent < 0 || *l.MemoryUsedPercent > 100) {
		return fmt.Errorf("%s.memoryUsedPercent: %g is not between 0 and 100", field, *l.MemoryUsedPercent)
	}
	if l.UtilizationPercent != nil && *l.UtilizationPercent > 100 {
		return fmt.Errorf("%s.utilizationPercent: %d is not between 0 and 100", field, *l.UtilizationPercent)
	}
	return nil
}

func injectableErrorNames() []string {
	names := make([]string, 0, len(nvmlErrors))
	for n := range nvmlErrors {
		names = append(names, n)
	}
	slices.Sort(names) // a stable message
	return names
}

// errGPUsChanged is returned when a reloaded scenario changes the GPU set, which needs a
// restart (the kubelet has the old devices).
var errGPUsChanged = errors.New("the GPUs (count, UUIDs, products or memory) changed; restart the agent to change them")
