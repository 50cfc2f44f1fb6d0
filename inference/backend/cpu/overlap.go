package cpu

import "unsafe"

// overlaps reports whether [a0,a1] and [b0,b1] (inclusive element
// addresses) intersect.
func overlaps(a0, a1, b0, b1 *float32) bool {
	pa0, pa1 := uintptr(unsafe.Pointer(a0)), uintptr(unsafe.Pointer(a1))
	pb0, pb1 := uintptr(unsafe.Pointer(b0)), uintptr(unsafe.Pointer(b1))
	return pa0 <= pb1 && pb0 <= pa1
}
