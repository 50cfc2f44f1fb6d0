package benchproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sdfleet/sdfleet/test/envtest"
)

// Manager is the sdfleet manager (cmd/manager) running as its own process.
type Manager struct {
	Cmd *exec.Cmd
	// MetricsAddress serves its Prometheus metrics.
	MetricsAddress string
}

// StartManager builds cmd/manager into dir, starts it against kubeconfig without leader
// election, with only errors logged and with args added, and waits until it is ready (its
// caches synced). Stop it with Stop.
func StartManager(ctx context.Context, dir, kubeconfig string, args ...string) (*Manager, error) {
	bin := filepath.Join(dir, "manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	build.Dir = envtest.RepoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build cmd/manager: %w", err)
	}
	metricsAddr, err := FreeAddress()
	if err != nil {
		return nil, err
	}
	probeAddr, err := FreeAddress()
	if err != nil {
		return nil, err
	}
	all := append([]string{"--kubeconfig", kubeconfig, "--leader-elect=false", "--health-probe-bind-address", probeAddr,
		"--metrics-bind-address", metricsAddr, "--zap-log-level=error"}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the manager: %w", err)
	}
	m := &Manager{Cmd: cmd, MetricsAddress: metricsAddr}
	if err := WaitForOK(ctx, "manager", "http://"+probeAddr+"/readyz"); err != nil {
		m.Stop()
		return nil, err
	}
	return m, nil
}

// Stop ends the manager and waits for it.
func (m *Manager) Stop() {
	_ = m.Cmd.Process.Signal(syscall.SIGTERM)
	_ = m.Cmd.Wait()
}

// Writes sums the manager's non-read API requests from client-go's
// rest_client_requests_total, and says how many of each method.
func (m *Manager) Writes(ctx context.Context) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.MetricsAddress+"/metrics", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	byMethod := map[string]int64{}
	var total int64
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			if !strings.Contains(line, `method="`+method+`"`) {
				continue
			}
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				return 0, "", fmt.Errorf("metrics line %q: %w", line, err)
			}
			byMethod[method] += int64(v)
			total += int64(v)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, "", err
	}
	return total, fmt.Sprintf("POST %d, PUT %d, PATCH %d, DELETE %d", byMethod["POST"], byMethod["PUT"],
		byMethod["PATCH"], byMethod["DELETE"]), nil
}
