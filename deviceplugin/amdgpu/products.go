package amdgpu

import "fmt"

// productNames names the PCI device IDs of the data-centre GPUs sdfleet is run on, for boards
// whose driver exposes no product_name.
var productNames = map[uint32]string{
	0x6860: "Radeon Instinct MI25",
	0x66a1: "Radeon Instinct MI50",
	0x738c: "AMD Instinct MI100",
	0x7408: "AMD Instinct MI250X",
	0x740c: "AMD Instinct MI250X / MI250",
	0x740f: "AMD Instinct MI210",
	0x73a1: "Radeon Pro V620",
	0x74a1: "AMD Instinct MI300X",
}

// productName is the name of a PCI device ID, or its number for one not in the table.
func productName(deviceID uint32) string {
	if name, ok := productNames[deviceID]; ok {
		return name
	}
	return fmt.Sprintf("AMD GPU 0x%04x", deviceID)
}
