package amdgputest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Card is one GPU of a fake tree. Zero fields are left out of the tree where the driver may
// leave them out too (UniqueID, ProductName, Serial, hwmon values).
type Card struct {
	// Card is the N of /sys/class/drm/card<N>; the render node is renderD<128+N>.
	Card int
	// PCI is the address, 0000:03:00.0 form.
	PCI string
	// Vendor defaults to 0x1002; set another to write a card of another vendor.
	Vendor string
	// DeviceID is the PCI device ID, for example 0x6860 (MI25).
	DeviceID    uint32
	UniqueID    string
	ProductName string
	Serial      string
	// NoRenderNode writes a display-only card.
	NoRenderNode bool
	// NoKFD leaves the card out of the KFD topology.
	NoKFD bool

	VRAMTotalBytes   uint64
	VRAMUsedBytes    uint64
	BusyPercent      uint32
	TempMillidegrees uint64
	PowerMicrowatts  uint64
}

// Tree is a fake sysfs root.
type Tree struct {
	Root  string
	cards map[int]Card
}

// New writes the cards under root (which must exist) with a CPU node and one KFD node per
// GPU, as a node's sysfs would have them.
func New(root string, cards ...Card) (*Tree, error) {
	t := &Tree{Root: root, cards: map[int]Card{}}
	if err := t.write(filepath.Join("class", "kfd", "kfd", "topology", "nodes", "0", "gpu_id"), "0"); err != nil {
		return nil, err
	}
	for i, c := range cards {
		if err := t.add(c, i+1); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Device is the card's device directory, /sys/class/drm/card<N>/device.
func (t *Tree) Device(card int) string {
	return filepath.Join(t.Root, "class", "drm", fmt.Sprintf("card%d", card), "device")
}

func (t *Tree) add(c Card, kfdNode int) error {
	if c.Vendor == "" {
		c.Vendor = "0x1002"
	}
	t.cards[c.Card] = c
	dev := filepath.Join("class", "drm", fmt.Sprintf("card%d", c.Card), "device")
	files := map[string]string{
		"vendor": c.Vendor, "device": fmt.Sprintf("0x%04x", c.DeviceID),
		"uevent":                      "DRIVER=amdgpu\nPCI_CLASS=38000\nPCI_SLOT_NAME=" + c.PCI + "\n",
		"mem_info_vram_total":         strconv.FormatUint(c.VRAMTotalBytes, 10),
		"mem_info_vram_used":          strconv.FormatUint(c.VRAMUsedBytes, 10),
		"gpu_busy_percent":            strconv.FormatUint(uint64(c.BusyPercent), 10),
		"hwmon/hwmon1/temp1_input":    strconv.FormatUint(c.TempMillidegrees, 10),
		"hwmon/hwmon1/power1_average": strconv.FormatUint(c.PowerMicrowatts, 10),
		"ras/umc_err_count":           "ue: 0\nce: 0\n",
		"ras/gfx_err_count":           "ue: 0\nce: 0\n",
	}
	if c.UniqueID != "" {
		files["unique_id"] = c.UniqueID
	}
	if c.ProductName != "" {
		files["product_name"] = c.ProductName
	}
	if c.Serial != "" {
		files["serial_number"] = c.Serial
	}
	for name, content := range files {
		if err := t.write(filepath.Join(dev, name), content); err != nil {
			return err
		}
	}
	if !c.NoRenderNode {
		if err := os.MkdirAll(filepath.Join(t.Root, dev, "drm", fmt.Sprintf("renderD%d", 128+c.Card)), 0o755); err != nil {
			return err
		}
	}
	if c.NoKFD || kfdNode <= 0 { // a restored card keeps its KFD node
		return nil
	}
	var domain, bus, device, fn uint64
	if _, err := fmt.Sscanf(c.PCI, "%x:%x:%x.%x", &domain, &bus, &device, &fn); err != nil {
		return fmt.Errorf("card%d: PCI address %q: %w", c.Card, c.PCI, err)
	}
	node := filepath.Join("class", "kfd", "kfd", "topology", "nodes", strconv.Itoa(kfdNode))
	if err := t.write(filepath.Join(node, "gpu_id"), strconv.Itoa(40000+kfdNode)); err != nil {
		return err
	}
	return t.write(filepath.Join(node, "properties"), fmt.Sprintf("simd_count 256\ndomain %d\nlocation_id %d\ndrm_render_minor %d\n",
		domain, bus<<8|device<<3|fn, 128+c.Card))
}

func (t *Tree) write(rel, content string) error {
	path := filepath.Join(t.Root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// Write and rename, as the driver's values change at once for a reader.
	if err := os.WriteFile(path+".new", []byte(content+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".new", path)
}

// SetLoad changes a card's used memory and busy percentage.
func (t *Tree) SetLoad(card int, usedBytes uint64, busyPercent uint32) error {
	dev := t.Device(card)
	if err := t.write(rel(t, filepath.Join(dev, "mem_info_vram_used")), strconv.FormatUint(usedBytes, 10)); err != nil {
		return err
	}
	return t.write(rel(t, filepath.Join(dev, "gpu_busy_percent")), strconv.FormatUint(uint64(busyPercent), 10))
}

// SetRAS sets a RAS block's uncorrectable and correctable counts, for example "umc".
func (t *Tree) SetRAS(card int, block string, uncorrectable, correctable uint64) error {
	return t.write(rel(t, filepath.Join(t.Device(card), "ras", block+"_err_count")), fmt.Sprintf("ue: %d\nce: %d", uncorrectable, correctable))
}

// Vanish removes a card from the tree, as when it falls off the bus.
func (t *Tree) Vanish(card int) error {
	return os.RemoveAll(filepath.Dir(t.Device(card)))
}

// Restore writes a vanished card back.
func (t *Tree) Restore(card int) error {
	c, ok := t.cards[card]
	if !ok {
		return fmt.Errorf("card%d is not in the tree", card)
	}
	return t.add(c, 0)
}

// MakeUnreadable turns a card's file (for example mem_info_vram_used) into a directory, which
// cannot be read even by root; MakeReadable writes it back with the value.
func (t *Tree) MakeUnreadable(card int, file string) error {
	path := filepath.Join(t.Device(card), file)
	if err := os.Remove(path); err != nil {
		return err
	}
	return os.Mkdir(path, 0o755)
}

// MakeReadable undoes MakeUnreadable, with the file holding value.
func (t *Tree) MakeReadable(card int, file, value string) error {
	path := filepath.Join(t.Device(card), file)
	if err := os.Remove(path); err != nil {
		return err
	}
	return t.write(rel(t, path), value)
}

func rel(t *Tree, path string) string {
	r, err := filepath.Rel(t.Root, path)
	if err != nil {
		return path
	}
	return r
}

const gib = uint64(1) << 30

// MI25Node is a node with four Radeon Instinct MI25 (16 GiB, no unique_id, so their UUIDs
// derive from PCI address and serial) and a display-only ASPEED card0 of another vendor.
func MI25Node() []Card {
	out := []Card{{Card: 0, PCI: "0000:02:00.0", Vendor: "0x1a03", DeviceID: 0x2000, VRAMTotalBytes: 64 << 20, NoKFD: true}}
	for i, pci := range []string{"0000:03:00.0", "0000:23:00.0", "0000:43:00.0", "0000:63:00.0"} {
		out = append(out, Card{Card: i + 1, PCI: pci, DeviceID: 0x6860, Serial: fmt.Sprintf("69225%03d", i),
			VRAMTotalBytes: 16 * gib, VRAMUsedBytes: uint64(i) * gib, BusyPercent: uint32(10 * i),
			TempMillidegrees: 40000 + uint64(i)*1000, PowerMicrowatts: 60_000_000 + uint64(i)*1_000_000})
	}
	return out
}

// MI210Node is a node with one AMD Instinct MI210 (64 GiB) that has unique_id and product_name.
func MI210Node() []Card {
	return []Card{{Card: 1, PCI: "0000:c1:00.0", DeviceID: 0x740f, UniqueID: "8fd5a2c3b1e04a67", ProductName: "AMD Instinct MI210",
		VRAMTotalBytes: 64 * gib, VRAMUsedBytes: 16 * gib, BusyPercent: 73, TempMillidegrees: 52000, PowerMicrowatts: 181_000_000}}
}
