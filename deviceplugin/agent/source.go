package agent

import (
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"

	"github.com/sdfleet/sdfleet/deviceplugin/config"
	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
	"github.com/sdfleet/sdfleet/deviceplugin/simulator"
)

// OpenSource opens the GPU source cfg names. A node without libnvidia-ml gets gpu.None, with a
// log line saying so, so the agent still publishes a GPUNode with zero GPUs. The simulator is
// returned too when simulated, for its file watch and control endpoint.
func OpenSource(cfg *config.Config, log logr.Logger) (gpu.Source, *simulator.Simulator, error) {
	switch cfg.GPUSource {
	case config.SourceSimulated:
		sim, err := simulator.FromFile(cfg.SimulatorConfig, simulator.Options{Seed: cfg.NodeName, Log: log.WithName("simulator")})
		if err != nil {
			return nil, nil, err
		}
		src, err := gpu.OpenNVML(sim.Library(), gpu.NVMLOptions{Visible: cfg.VisibleGPUs, Simulated: true, Log: log})
		if err != nil {
			return nil, nil, fmt.Errorf("simulated GPUs: %w", err)
		}
		log.Info("using simulated GPUs", "scenario", cfg.SimulatorConfig, "gpus", len(src.Devices()))
		return src, sim, nil
	case config.SourceNVML:
		src, err := gpu.OpenNVML(nvml.New(), gpu.NVMLOptions{Visible: cfg.VisibleGPUs, Log: log})
		if errors.Is(err, gpu.ErrLibraryNotFound) {
			log.Info("NVML library libnvidia-ml.so.1 not found: no NVIDIA driver on this node; publishing a GPUNode with zero GPUs")
			return gpu.None{}, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		log.Info("using NVML", "gpus", len(src.Devices()))
		return src, nil, nil
	default:
		return nil, nil, fmt.Errorf("--gpu-source=%s: must be %s or %s", cfg.GPUSource, config.SourceNVML, config.SourceSimulated)
	}
}
