package podcontract

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContainerName is the name of the inference container in every image pod.
const ContainerName = "sdgen"

// Command is the entry point of the inference container.
var Command = []string{"sdgen", "generate"}

// Flags of `sdgen generate`.
const (
	FlagPrompt         = "--prompt"
	FlagNegativePrompt = "--negative-prompt"
	FlagSeed           = "--seed"
	FlagSteps          = "--steps"
	FlagWidth          = "--width"
	FlagHeight         = "--height"
	FlagGuidance       = "--guidance"
	FlagSampler        = "--sampler"
	FlagModel          = "--model"
	FlagOutput         = "--output"
	FlagDevice         = "--device"
	FlagResultFile     = "--result-file"
)

// Values of FlagDevice.
const (
	// DeviceAuto uses the GPU the pod was given, or the CPU when it has none.
	DeviceAuto = "auto"
	// DeviceCPU runs on the CPU.
	DeviceCPU = "cpu"
	// DeviceVulkanPrefix followed by an index ("vulkan:0") names a Vulkan device in the
	// loader's order.
	DeviceVulkanPrefix = "vulkan:"
)

// Mount points inside the image pod.
const (
	ModelMountPath   = "/sdfleet/model"
	OutputMountPath  = "/sdfleet/output"
	ScratchMountPath = "/tmp"
	// ResultFile is the container's termination message path, where sdgen writes its Result.
	ResultFile = "/dev/termination-log"
)

// Exit codes of `sdgen generate`, from the sysexits range (64-78) that neither the shell, the
// Go runtime (2 on a fatal error, or an unrecovered panic) nor the kernel (128+signal) uses, so
// that a crash is never read as a verdict on the image.
const (
	ExitSuccess = 0
	// ExitUsage (EX_USAGE): the command line is wrong (an unknown or missing flag, a value that
	// does not parse, an extra argument). The image fails.
	ExitUsage = 64
	// ExitInvalidInput (EX_DATAERR): a value is invalid (an empty prompt, a size that is not a
	// multiple of 8, an unknown sampler). The image fails.
	ExitInvalidInput = 65
	// ExitModelError (EX_NOINPUT): the model is missing, corrupt or unsupported. The job fails.
	ExitModelError = 66
	// ExitDeviceError (EX_UNAVAILABLE): the GPU cannot be used. Retried on another GPU.
	ExitDeviceError = 69
	// ExitInternal (EX_SOFTWARE): sdgen caught its own bug (a recovered panic). Retried.
	ExitInternal = 70
	// ExitOutOfMemory (EX_OSERR): the GPU or the container ran out of memory. Retried on another
	// GPU.
	ExitOutOfMemory = 71
)

// Result is the JSON object sdgen writes to the result file when it exits.
type Result struct {
	// OutputPath is the PNG file sdgen wrote, as the container sees it.
	OutputPath string `json:"outputPath,omitempty"`
	// SHA256 is the hex SHA-256 of the PNG file.
	SHA256 string `json:"sha256,omitempty"`
	// DurationMilliseconds is how long loading and generation took.
	DurationMilliseconds int64 `json:"durationMilliseconds,omitempty"`
	// Device is where the image was generated, for example "cuda:0" or "cpu".
	Device string `json:"device,omitempty"`
	// GPUUUID is the GPU the kubelet gave the container (SDFLEET_GPU_UUID), empty on the CPU.
	// It lets anyone check that the image ran on exactly the GPU the controller chose.
	GPUUUID string `json:"gpuUUID,omitempty"`
	// DeviceName and DeviceUUID are the compute device sdgen actually ran on, as its Vulkan
	// driver reports them; both are empty on the CPU. For a real GPU DeviceUUID equals GPUUUID.
	DeviceName string `json:"deviceName,omitempty"`
	DeviceUUID string `json:"deviceUUID,omitempty"`
	// SimulatedGPU is true when the pod's GPU was simulated (EnvGPUSimulated) and sdgen ran
	// on the software Vulkan device in its place.
	SimulatedGPU bool `json:"simulatedGPU,omitempty"`
	// Family is the model family sdgen found in the checkpoint: "sd1", "sd2" or "sdxl".
	Family string `json:"family,omitempty"`
	// PeakHostMemoryBytes is sdgen's peak resident memory; PeakDeviceMemoryBytes the most GPU
	// memory it held at once (0 on the CPU). The controller learns each model's memory per
	// pixel from them.
	PeakHostMemoryBytes   int64 `json:"peakHostMemoryBytes,omitempty"`
	PeakDeviceMemoryBytes int64 `json:"peakDeviceMemoryBytes,omitempty"`
	// Error explains a failure.
	Error string `json:"error,omitempty"`
}

// MaxMessageLength bounds the messages the API's message fields hold: an image's message taken
// from a termination message, a GPU's health reason (1024 bytes each).
const MaxMessageLength = 1024

// ParseResult reads a termination message. A JSON Result is returned as is; any other text
// (the log tail kept by FallbackToLogsOnError) becomes Result.Error, cut to MaxMessageLength.
// ok is false when the message was not a Result.
func ParseResult(message string) (r Result, ok bool) {
	trimmed := strings.TrimSpace(message)
	if strings.HasPrefix(trimmed, "{") && json.Unmarshal([]byte(trimmed), &r) == nil {
		r.Error = Truncate(r.Error, MaxMessageLength)
		return r, true
	}
	return Result{Error: Truncate(trimmed, MaxMessageLength)}, false
}

// Validate checks a successful Result: a PNG path, a 64-digit hex SHA-256 and a non-negative
// duration.
func (r Result) Validate() error {
	if !strings.HasSuffix(r.OutputPath, ".png") {
		return fmt.Errorf("result outputPath %q: expected a .png file", r.OutputPath)
	}
	if len(r.SHA256) != 64 || strings.Trim(strings.ToLower(r.SHA256), "0123456789abcdef") != "" {
		return fmt.Errorf("result sha256 %q: expected 64 hex digits", r.SHA256)
	}
	if r.DurationMilliseconds < 0 {
		return fmt.Errorf("result durationMilliseconds %d: expected >= 0", r.DurationMilliseconds)
	}
	return nil
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 character.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Failure is what an exit code means for the image and the job.
type Failure string

// Failure classes of an exit code.
const (
	// FailureNone: the image succeeded.
	FailureNone Failure = ""
	// FailureInvalidInput: the image fails at once.
	FailureInvalidInput Failure = "InvalidInput"
	// FailureModel: the job fails.
	FailureModel Failure = "ModelError"
	// FailureOutOfMemory: retried on another GPU.
	FailureOutOfMemory Failure = "OutOfMemory"
	// FailureDevice: retried on another GPU.
	FailureDevice Failure = "DeviceError"
	// FailureOther: retried.
	FailureOther Failure = "Error"
	// FailureNoResult: sdgen exited 0 but left no valid Result, so the image may not be
	// written: retried.
	FailureNoResult Failure = "NoResult"
)

// Classify maps an exit code of sdgen to its failure class. Every code sdgen does not choose
// itself (1, a Go runtime crash's 2, 137 for a kill, any other) is FailureOther: retried.
func Classify(exitCode int32) Failure {
	switch exitCode {
	case ExitSuccess:
		return FailureNone
	case ExitUsage, ExitInvalidInput:
		return FailureInvalidInput
	case ExitModelError:
		return FailureModel
	case ExitOutOfMemory:
		return FailureOutOfMemory
	case ExitDeviceError:
		return FailureDevice
	default:
		return FailureOther
	}
}

// Retriable reports whether an image that failed with f may run again.
func (f Failure) Retriable() bool {
	return f == FailureOutOfMemory || f == FailureDevice || f == FailureOther || f == FailureNoResult
}

// CleanRelative turns a path inside a volume into a clean relative path that cannot leave the
// volume: it is resolved as if the volume were the root, so ".." segments stop at the root.
// The empty path and "/" become "".
func CleanRelative(p string) string {
	cleaned := strings.TrimPrefix(path.Clean("/"+p), "/")
	return cleaned
}

// OutputRelativePath is where image index of job in namespace is written, relative to the
// output volume's root: <prefix>/<namespace>/<job>/<index>.png, cleaned.
func OutputRelativePath(prefix, namespace, job string, index int32) string {
	return CleanRelative(path.Join(CleanRelative(prefix), CleanRelative(namespace), CleanRelative(job),
		strconv.FormatInt(int64(index), 10)+".png"))
}

// InVolume joins a mount point and a relative path, keeping the result inside the mount.
func InVolume(mount, relative string) string {
	return path.Join(mount, CleanRelative(relative))
}

// HostModelMount splits a model's host path into the host folder the image pod mounts and the
// model's name inside it. The model's folder is mounted, not the model itself, so that a model
// missing on the node is reported by sdgen instead of leaving the pod unable to start. A model
// directly under / is mounted itself (base is empty): the host's root is never mounted. The
// job policy judges the same folder the pod mounts.
func HostModelMount(hostPath string) (dir, base string) {
	clean := "/" + CleanRelative(hostPath)
	dir, base = path.Split(clean)
	dir = path.Clean(dir)
	if dir == "/" || base == "" {
		return clean, ""
	}
	return dir, base
}
