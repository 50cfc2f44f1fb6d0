package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerBuild is one `go build` of the Dockerfile: the binary it writes, the package and cgo.
type dockerBuild struct {
	binary, pkg, cgo string
}

var (
	goBuildRE  = regexp.MustCompile(`CGO_ENABLED=(\d)\s+go build .*-o (\S+) (\./cmd/\S+)`)
	makeEchoRE = regexp.MustCompile(`^CGO_ENABLED=(\d) build .*-o (\S+) (\./cmd/\S+)$`)
)

// TestDockerfile checks what can be checked without a Docker engine: every path the Dockerfile
// copies from the build context exists, it builds exactly what `make build` builds with the
// same cgo setting, and each image gets the base its binary needs.
func TestDockerfile(t *testing.T) {
	path := filepath.Join(repoRoot, "Dockerfile")
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	var builds []dockerBuild
	stageBase := map[string]string{}   // stage name -> base image
	stageBinary := map[string]string{} // stage name -> binary copied from the build stage
	stage := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(line, "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stage = fields[len(fields)-1]
			stageBase[stage] = fields[1]
		case "COPY":
			if strings.HasPrefix(fields[1], "--from=") {
				stageBinary[stage] = fields[2]
				continue
			}
			for _, src := range fields[1 : len(fields)-1] {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("Dockerfile line %d copies %s, which does not exist", n, src)
				}
			}
		case "RUN":
			if m := goBuildRE.FindStringSubmatch(line); m != nil {
				builds = append(builds, dockerBuild{binary: filepath.Base(m[2]), pkg: m[3], cgo: m[1]})
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(builds) == 0 {
		t.Fatal("Dockerfile builds no ./cmd binary")
	}

	made := makeBuilds(t)
	slices.SortFunc(builds, func(a, b dockerBuild) int { return strings.Compare(a.binary, b.binary) })
	if !slices.Equal(builds, made) {
		t.Errorf("Dockerfile builds %v, `make build` builds %v", builds, made)
	}

	// Each binary gets an image target named after it, on the base its cgo setting needs.
	for _, b := range builds {
		base, ok := stageBase[b.binary]
		if !ok {
			t.Errorf("Dockerfile has no image target %s", b.binary)
			continue
		}
		if !strings.HasSuffix(stageBinary[b.binary], "/"+b.binary) {
			t.Errorf("image target %s copies %q, want the %s binary", b.binary, stageBinary[b.binary], b.binary)
		}
		wantBase := "gcr.io/distroless/static-debian12:nonroot" // no libc needed
		switch {
		case b.cgo == "1":
			wantBase = "gcr.io/distroless/base-debian12" // glibc for cgo's dlopen
		case b.binary == "sdgen":
			wantBase = "debian:12-slim" // glibc for purego, apt for the Vulkan loader and Mesa
		}
		if base != wantBase {
			t.Errorf("image target %s is based on %s, want %s (CGO_ENABLED=%s)", b.binary, base, wantBase, b.cgo)
		}
	}
	checkCopiedPackages(t, builds)
}

// makeBuilds runs `make build` with a go command that only reports what it was asked to build.
func makeBuilds(t *testing.T) []dockerBuild {
	t.Helper()
	fakeGo := filepath.Join(t.TempDir(), "go")
	script := "#!/bin/sh\necho \"CGO_ENABLED=$CGO_ENABLED $*\"\n"
	if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "-C", repoRoot, "build", "GO="+fakeGo)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make build with a stub go: %v\n%s", err, out)
	}
	var builds []dockerBuild
	for _, line := range strings.Split(string(out), "\n") {
		if m := makeEchoRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			builds = append(builds, dockerBuild{binary: filepath.Base(m[2]), pkg: m[3], cgo: m[1]})
		}
	}
	if len(builds) == 0 {
		t.Fatalf("make build built nothing:\n%s", out)
	}
	slices.SortFunc(builds, func(a, b dockerBuild) int { return strings.Compare(a.binary, b.binary) })
	return builds
}

// checkCopiedPackages checks that the Dockerfile copies every folder of the module that the
// binaries it builds import, so that `docker build` finds their sources.
func checkCopiedPackages(t *testing.T, builds []dockerBuild) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	copied := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 2 && fields[0] == "COPY" && !strings.HasPrefix(fields[1], "--") {
			for _, src := range fields[1 : len(fields)-1] {
				copied[strings.Trim(src, "/")] = true
			}
		}
	}
	const module = "github.com/sdfleet/sdfleet/"
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	for _, b := range builds {
		args = append(args, b.pkg)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if !strings.HasPrefix(pkg, module) {
			continue
		}
		top, _, _ := strings.Cut(strings.TrimPrefix(pkg, module), "/")
		if !copied[top] {
			t.Errorf("the binaries import %s, but the Dockerfile does not copy %s/", pkg, top)
		}
	}
}
