package packaging

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The metric sources: every sdfleet_ metric the dashboard reads must be defined in one of them.
var metricSources = []string{"controllers/metrics.go", "deviceplugin/metrics/metrics.go"}

var metricNameRE = regexp.MustCompile(`\b(sdfleet_[a-z_]+|DCGM_FI_[A-Z_]+)\b`)

// TestDashboardStructure checks the dashboard JSON without Prometheus: a templated data source
// on every panel, node and gpu variables keyed on the always-present sdfleet_gpu_info, the panels
// people look for, DCGM panels marked, and only metrics the code defines.
func TestDashboardStructure(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "sdfleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboards/sdfleet.json: %v", err)
	}

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type + " " + v.Definition
	}
	if !strings.HasPrefix(vars["datasource"], "datasource") {
		t.Errorf("no datasource variable: %v", vars)
	}
	for _, name := range []string{"node", "gpu"} {
		if !strings.Contains(vars[name], "label_values(sdfleet_gpu_info") {
			t.Errorf("variable %s = %q, want label_values over sdfleet_gpu_info", name, vars[name])
		}
	}

	var code strings.Builder
	for _, src := range metricSources {
		b, err := os.ReadFile(filepath.Join(repoRoot, src))
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	var titles []string
	for _, p := range d.panels() {
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q uses data source %q, want ${datasource}", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tgt := range p.Targets {
			for _, m := range metricNameRE.FindAllString(tgt.Expr, -1) {
				if strings.HasPrefix(m, "DCGM_") {
					if !strings.Contains(p.Title, "(DCGM)") || !strings.Contains(p.Description, "dcgm-exporter") ||
						!strings.Contains(tgt.Expr, "on (UUID)") {
						t.Errorf("panel %q reads %s: it must say (DCGM) in its title, name dcgm-exporter in its description and join on UUID", p.Title, m)
					}
					continue
				}
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_count"), "_sum")
				if !strings.Contains(code.String(), `"`+base+`"`) {
					t.Errorf("panel %q reads %s, which %v do not define", p.Title, m, metricSources)
				}
			}
		}
	}
	for _, want := range []string{"GPU memory used vs total", "GPU utilization", "GPU temperature", "GPU health",
		"Images per second per GPU", "Image latency p50 / p95", "Images waiting", "Placement decisions", "Retries by reason"} {
		if !slices.Contains(titles, want) {
			t.Errorf("dashboard lacks panel %q; it has %v", want, titles)
		}
	}
}
