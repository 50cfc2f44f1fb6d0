package agent

import (
	"errors"
	"fmt"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"

	"github.com/sdfleet/sdfleet/deviceplugin/amdgpu"
	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

// OpenSource opens the GPU source cfg names. A node without the GPUs it names (no
// libnvidia-ml, no AMD card in sysfs) gets gpu.None, with a log line saying so, so the agent
// still publishes a GPUNode with zero GPUs. With auto, a node with GPUs of both vendors gets
// both, NVIDIA's first. The simulator is returned too when simulated, for its file watch and
// control endpoint.
func OpenSource(cfg *config.Config, log logr.Logger) (gpu.Source, *simulator.Simulator, error) {
	switch cfg.GPUSource {
	case config.SourceSimulated:
		sim, err := simulator.FromFile(cfg.SimulatorConfig, simulator.Options{Seed: cfg.NodeName, Log: log.WithName("simulator")})
		if err != nil {
			return nil, nil, err
		}
		src, err := gpu.OpenNVML(sim.Library(), gpu.NVMLOptions{Visible: cfg.VisibleGPUs, Simulated: true, VendorOf: sim.Vendor, Log: log})
		if err != nil {
			return nil, nil, fmt.Errorf("simulated GPUs: %w", err)
		}
		log.Info("using simulated GPUs", "scenario", cfg.SimulatorConfig, "gpus", len(src.Devices()))
		return src, sim, nil
	case config.SourceNVML:
		src, err := openNVML(cfg.VisibleGPUs, log)
		if err != nil || src == nil {
			return gpu.None{}, nil, err
		}
		return src, nil, nil
	case config.SourceAMDGPU:
		src, err := openAMD(cfg, cfg.VisibleGPUs, log)
		if err != nil || src == nil {
			return gpu.None{}, nil, err
		}
		return src, nil, nil
	case config.SourceAuto:
		return openAuto(cfg, log)
	default:
		return nil, nil, fmt.Errorf("--gpu-source=%s: must be one of %s", cfg.GPUSource, strings.Join(config.Sources, ", "))
	}
}

// openAuto opens every source the node has. --visible-gpus numbers GPUs within one vendor, so
// on a node with both vendors it must be all.
func openAuto(cfg *config.Config, log logr.Logger) (gpu.Source, *simulator.Simulator, error) {
	nv, err := openNVML(nil, log)
	if err != nil {
		return nil, nil, err
	}
	amd, err := openAMD(cfg, nil, log)
	if err != nil {
		if nv != nil {
			_ = nv.Close()
		}
		return nil, nil, err
	}
	var sources []gpu.Source
	for _, s := range []gpu.Source{nv, amd} {
		if s != nil && len(s.Devices()) > 0 {
			sources = append(sources, s)
		} else if s != nil {
			_ = s.Close()
		}
	}
	all := len(cfg.VisibleGPUs) == 0 || (len(cfg.VisibleGPUs) == 1 && strings.EqualFold(cfg.VisibleGPUs[0], "all"))
	switch {
	case len(sources) == 0:
		log.Info("no NVIDIA or AMD GPU on this node; publishing a GPUNode with zero GPUs")
		return gpu.None{}, nil, nil
	case len(sources) == 2 && !all:
		_ = gpu.Combine(sources...).Close()
		return nil, nil, fmt.Errorf("--visible-gpus=%s: this node has NVIDIA and AMD GPUs; choose one with --gpu-source=nvml or amdgpu to select GPUs, or use all", strings.Join(cfg.VisibleGPUs, ","))
	case len(sources) == 2:
		log.Info("node has NVIDIA and AMD GPUs; AMD GPUs are numbered after NVIDIA's")
		return gpu.Combine(sources...), nil, nil
	}
	// One vendor: open it again with the selection, which may name GPUs that do not exist.
	_ = sources[0].Close()
	if nv != nil && len(nv.Devices()) > 0 {
		src, err := openNVML(cfg.VisibleGPUs, log)
		return src, nil, err
	}
	src, err := openAMD(cfg, cfg.VisibleGPUs, log)
	return src, nil, err
}

// openNVML returns nil, without error, where libnvidia-ml is missing.
func openNVML(visible []string, log logr.Logger) (gpu.Source, error) {
	src, err := gpu.OpenNVML(nvml.New(), gpu.NVMLOptions{Visible: visible, Log: log})
	if errors.Is(err, gpu.ErrLibraryNotFound) {
		log.Info("NVML library libnvidia-ml.so.1 not found: no NVIDIA driver on this node")
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	log.Info("using NVML", "gpus", len(src.Devices()))
	return src, nil
}

// openAMD returns nil, without error, where sysfs shows no AMD GPU.
func openAMD(cfg *config.Config, visible []string, log logr.Logger) (gpu.Source, error) {
	src, err := amdgpu.Open(amdgpu.Options{SysfsRoot: cfg.SysfsRoot, Visible: visible, EventInterval: cfg.SampleInterval, Log: log.WithName("amdgpu")})
	if err != nil {
		return nil, fmt.Errorf("--sysfs-root=%s: %w", cfg.SysfsRoot, err)
	}
	if len(src.Devices()) == 0 {
		log.Info("no AMD GPU in sysfs (no card with PCI vendor 0x1002 and a render node)", "sysfsRoot", cfg.SysfsRoot)
		return nil, nil
	}
	log.Info("using the amdgpu driver's sysfs", "sysfsRoot", cfg.SysfsRoot, "gpus", len(src.Devices()))
	return src, nil
}
