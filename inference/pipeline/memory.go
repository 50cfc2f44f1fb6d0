package pipeline

import (
	"fmt"
	"os"
	"strings"
)

// PeakRSS is the process's peak resident memory (VmHWM) in bytes, 0 where /proc is
// unavailable. sdgen reports it in its result and hack/bench-sdgen in its figures.
func PeakRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}
