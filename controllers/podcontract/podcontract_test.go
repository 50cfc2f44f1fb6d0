package podcontract

import (
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		code      int32
		want      Failure
		retriable bool
	}{
		{0, FailureNone, false},
		{64, FailureInvalidInput, false},
		{65, FailureInvalidInput, false},
		{66, FailureModel, false},
		{69, FailureDevice, true},
		{70, FailureOther, true},
		{71, FailureOutOfMemory, true},
		{1, FailureOther, true},
		// The Go runtime exits 2 on a fatal error or an unrecovered panic: a crash, retried.
		{2, FailureOther, true},
		// The codes of the first scheme, and any other code sdgen does not choose, are retried.
		{3, FailureOther, true},
		{4, FailureOther, true},
		{5, FailureOther, true},
		{78, FailureOther, true},
		{137, FailureOther, true},
		{-1, FailureOther, true},
	}
	for _, tt := range tests {
		got := Classify(tt.code)
		if got != tt.want || got.Retriable() != tt.retriable {
			t.Errorf("Classify(%d) = %q (retriable %v), want %q (retriable %v)",
				tt.code, got, got.Retriable(), tt.want, tt.retriable)
		}
	}
}

func TestParseResult(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		message string
		wantOK  bool
		want    Result
	}{
		{"json result", `{"outputPath":"/sdfleet/output/a/0.png","sha256":"` + sha + `","durationMilliseconds":1500,"device":"cuda:0"}`,
			true, Result{OutputPath: "/sdfleet/output/a/0.png", SHA256: sha, DurationMilliseconds: 1500, Device: "cuda:0"}},
		{"json error", ` {"error":"model.safetensors: missing tensor"} `, true, Result{Error: "model.safetensors: missing tensor"}},
		{"log tail", "panic: boom\ngoroutine 1", false, Result{Error: "panic: boom\ngoroutine 1"}},
		{"broken json", `{"outputPath":`, false, Result{Error: `{"outputPath":`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseResult(tt.message)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ParseResult(%q) = %+v, %v; want %+v, %v", tt.message, got, ok, tt.want, tt.wantOK)
			}
		})
	}
	long, _ := ParseResult(strings.Repeat("é", 2000))
	if len(long.Error) > MaxMessageLength || !strings.HasPrefix(long.Error, "é") {
		t.Errorf("a long log tail was not cut to %d bytes of whole characters: %d bytes", MaxMessageLength, len(long.Error))
	}
}

func TestValidate(t *testing.T) {
	sha := strings.Repeat("0f", 32)
	good := Result{OutputPath: "/o/1.png", SHA256: sha, DurationMilliseconds: 10}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v, want nil", good, err)
	}
	for _, bad := range []Result{
		{OutputPath: "/o/1.jpg", SHA256: sha},
		{OutputPath: "/o/1.png", SHA256: "xyz"},
		{OutputPath: "/o/1.png", SHA256: sha, DurationMilliseconds: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

func TestPaths(t *testing.T) {
	tests := []struct {
		prefix, namespace, job string
		index                  int32
		want                   string
	}{
		{"", "default", "cats", 3, "default/cats/3.png"},
		{"runs/2026", "ns", "j", 0, "runs/2026/ns/j/0.png"},
		{"../../etc", "ns", "j", 1, "etc/ns/j/1.png"},
		{"/abs//x/./", "ns", "j", 2, "abs/x/ns/j/2.png"},
	}
	for _, tt := range tests {
		if got := OutputRelativePath(tt.prefix, tt.namespace, tt.job, tt.index); got != tt.want {
			t.Errorf("OutputRelativePath(%q, %q, %q, %d) = %q, want %q", tt.prefix, tt.namespace, tt.job, tt.index, got, tt.want)
		}
	}
	if got := InVolume(ModelMountPath, "../../../root/.ssh"); got != ModelMountPath+"/root/.ssh" {
		t.Errorf("InVolume escaped its mount: %q", got)
	}
	if got := InVolume(ModelMountPath, ""); got != ModelMountPath {
		t.Errorf("InVolume(root) = %q, want %q", got, ModelMountPath)
	}
}
