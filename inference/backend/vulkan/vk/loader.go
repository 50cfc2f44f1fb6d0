package vk

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// LoaderName is the Vulkan loader's soname. On NVIDIA nodes the container
// toolkit mounts the driver's ICD only when NVIDIA_DRIVER_CAPABILITIES
// includes graphics; the loader itself comes from the image.
const LoaderName = "libvulkan.so.1"

// ErrNoLoader reports that libvulkan.so.1 could not be opened.
var ErrNoLoader = errors.New("the Vulkan loader " + LoaderName + " is not installed")

var (
	loadOnce            sync.Once
	loadErr             error
	getInstanceProcAddr uintptr
	getDeviceProcAddr   uintptr
)

// Load opens the Vulkan loader once per process.
func Load() error {
	loadOnce.Do(func() { getInstanceProcAddr, getDeviceProcAddr, loadErr = open(LoaderName) })
	return loadErr
}

// open loads the named loader library and its two entry points; any
// failure is ErrNoLoader, on which --device auto falls back to the CPU.
func open(name string) (instanceProc, deviceProc uintptr, err error) {
	lib, err := purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNoLoader, err)
	}
	if instanceProc, err = purego.Dlsym(lib, "vkGetInstanceProcAddr"); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNoLoader, err)
	}
	if deviceProc, err = purego.Dlsym(lib, "vkGetDeviceProcAddr"); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNoLoader, err)
	}
	return instanceProc, deviceProc, nil
}

// call invokes a C function pointer. Its uintptr arguments may be Go
// pointers converted in the call expression: the directive keeps them on
// the heap and alive until the call returns.
//
//go:uintptrescapes
func call(fn uintptr, args ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(fn, args...)
	return r
}

// callResult is call for functions returning a VkResult; it needs the same
// directive since its callers convert pointers in its argument list.
//
//go:uintptrescapes
func callResult(fn uintptr, args ...uintptr) Result {
	r, _, _ := purego.SyscallN(fn, args...)
	return Result(int32(r))
}

// CString returns a NUL-terminated copy of s.
func CString(s string) *byte {
	b := append([]byte(s), 0)
	return &b[0]
}

// CStrings returns a C array of NUL-terminated copies (nil when empty).
func CStrings(ss []string) **byte {
	if len(ss) == 0 {
		return nil
	}
	arr := make([]*byte, len(ss))
	for i, s := range ss {
		arr[i] = CString(s)
	}
	return &arr[0]
}

// GoString reads a NUL-terminated C string.
func GoString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// FixedString reads a NUL-padded fixed-size C character array.
func FixedString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func procAddr(instance Instance, name string) uintptr {
	return call(getInstanceProcAddr, uintptr(instance), uintptr(unsafe.Pointer(CString(name))))
}

func deviceProcAddr(device Device, name string) uintptr {
	return call(getDeviceProcAddr, uintptr(device), uintptr(unsafe.Pointer(CString(name))))
}

// Error is a failed Vulkan call.
type Error struct {
	Call   string
	Result Result
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Call, e.Result) }

func (r Result) String() string {
	switch r {
	case Success:
		return "VK_SUCCESS"
	case NotReady:
		return "VK_NOT_READY"
	case Timeout:
		return "VK_TIMEOUT"
	case Incomplete:
		return "VK_INCOMPLETE"
	case ErrorOutOfHostMemory:
		return "VK_ERROR_OUT_OF_HOST_MEMORY"
	case ErrorOutOfDeviceMemory:
		return "VK_ERROR_OUT_OF_DEVICE_MEMORY"
	case ErrorInitializationFail:
		return "VK_ERROR_INITIALIZATION_FAILED"
	case ErrorDeviceLost:
		return "VK_ERROR_DEVICE_LOST"
	case ErrorMemoryMapFailed:
		return "VK_ERROR_MEMORY_MAP_FAILED"
	case ErrorLayerNotPresent:
		return "VK_ERROR_LAYER_NOT_PRESENT"
	case ErrorExtensionNotPresent:
		return "VK_ERROR_EXTENSION_NOT_PRESENT"
	case ErrorFeatureNotPresent:
		return "VK_ERROR_FEATURE_NOT_PRESENT"
	case ErrorIncompatibleDriver:
		return "VK_ERROR_INCOMPATIBLE_DRIVER"
	case ErrorTooManyObjects:
		return "VK_ERROR_TOO_MANY_OBJECTS"
	}
	return fmt.Sprintf("VkResult(%d)", int32(r))
}

func check(name string, r Result) error {
	if r < 0 {
		return &Error{Call: name, Result: r}
	}
	return nil
}

// IsOutOfMemory reports whether err is a Vulkan out-of-memory result.
func IsOutOfMemory(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Result == ErrorOutOfDeviceMemory || e.Result == ErrorOutOfHostMemory)
}

// IsDeviceLost reports whether err is VK_ERROR_DEVICE_LOST.
func IsDeviceLost(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Result == ErrorDeviceLost
}
