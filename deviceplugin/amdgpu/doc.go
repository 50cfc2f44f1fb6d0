// Package amdgpu is the node agent's GPU source for AMD GPUs, read from the amdgpu kernel
// driver's sysfs files: no ROCm library and no C code is needed on the node.
//
// Discovery takes every /sys/class/drm/card<N> whose PCI vendor is 0x1002 and that has a
// render node (display-only cards are left out). A GPU's UUID is the driver's unique_id in
// ROCm's spelling (GPU-<16 hex digits>), or, on boards without one, derived from its PCI
// address and serial number; its product name is product_name where the board has it, else the
// name of its PCI device ID; its KFD node (/sys/class/kfd/kfd/topology/nodes/*) is matched by
// PCI location, so that a GPU ROCm cannot use is logged.
//
// Load comes from mem_info_vram_used/total, gpu_busy_percent and the card's hwmon
// (temp1_input, power1_average). Health follows the rules of NVIDIA GPUs: a read that fails or
// a card that vanishes fails the sample, and a rise of an uncorrectable RAS counter
// (ras/*_err_count "ue:") is an error event, like a double-bit ECC error. Correctable counts
// are not: the hardware corrected them, as with single-bit ECC errors.
//
// Tests and `deviceplugin --sysfs-root` read a fake tree; package amdgputest writes one.
package amdgpu
