package amdgpu

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/uuid"

	"github.com/sdfleet/sdfleet/deviceplugin/gpu"
)

// VendorID is AMD's PCI vendor ID as sysfs writes it.
const VendorID = "0x1002"

// DefaultSysfsRoot is where sysfs is mounted on a node.
const DefaultSysfsRoot = "/sys"

// uuidNamespace derives the UUID of a GPU without unique_id from its PCI address and serial.
var uuidNamespace = uuid.MustParse("0d3f8c59-5e0c-4c3e-8d6e-2f6a1b7c9e41")

// cardName matches the DRM card directories; connectors (card0-DP-1) are left out.
var cardName = regexp.MustCompile(`^card[0-9]+$`)

// Options tune Open.
type Options struct {
	// SysfsRoot is where sysfs is mounted; empty means DefaultSysfsRoot. Tests point it at a
	// fake tree.
	SysfsRoot string
	// Visible selects the GPUs to manage by index, UUID or PCI address. Empty or ["all"]
	// manages every GPU.
	Visible []string
	// EventInterval is how often the RAS counters are read. Zero means one second.
	EventInterval time.Duration
	Log           logr.Logger
}

// card is one managed GPU.
type card struct {
	info   gpu.Info
	name   string // card<N>
	device string // <root>/class/drm/card<N>/device
	hwmon  string // its hwmon directory, empty if none
}

// Source is the gpu.Source over the amdgpu driver's sysfs.
type Source struct {
	cards    []card
	interval time.Duration
	log      logr.Logger

	mu  sync.Mutex
	ras []map[string]uint64 // per card: uncorrectable count by RAS block, the last seen
}

var _ gpu.Source = (*Source)(nil)

// Open finds the AMD GPUs under the sysfs root and reads their static facts. A node without
// AMD GPUs gets a Source with none. It fails when the root cannot be read, when a GPU's
// memory size cannot be read (naming the file), or when a Visible entry matches no GPU.
func Open(opts Options) (*Source, error) {
	root := opts.SysfsRoot
	if root == "" {
		root = DefaultSysfsRoot
	}
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("sysfs root: %w", err)
	}
	s := &Source{interval: opts.EventInterval, log: opts.Log}
	if s.interval <= 0 {
		s.interval = time.Second
	}
	entries, err := os.ReadDir(filepath.Join(root, "class", "drm"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list DRM cards: %w", err)
	}
	kfd := kfdNodes(root)
	var found []card
	for _, e := range entries {
		if !cardName.MatchString(e.Name()) {
			continue
		}
		c, ok, err := discover(root, e.Name(), opts.Log)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if node, ok := kfd[c.info.PCIBusID]; ok {
			opts.Log.V(1).Info("AMD GPU found", "card", c.name, "pci", c.info.PCIBusID, "kfdNode", node)
		} else {
			opts.Log.Info("AMD GPU has no KFD node: ROCm programs cannot use it (is the amdgpu driver's KFD enabled?)",
				"card", c.name, "pci", c.info.PCIBusID)
		}
		found = append(found, c)
	}
	// PCI addresses do not move between boots; card numbers may.
	slices.SortFunc(found, func(a, b card) int { return strings.Compare(a.info.PCIBusID, b.info.PCIBusID) })
	for i := range found {
		found[i].info.Index = i
	}
	if s.cards, err = selectVisible(found, opts.Visible); err != nil {
		return nil, err
	}
	s.ras = make([]map[string]uint64, len(s.cards))
	for i, c := range s.cards {
		s.ras[i] = uncorrectable(c.device)
	}
	return s, nil
}

// discover reads one DRM card; ok is false for a card that is not an AMD GPU with a render node.
func discover(root, name string, log logr.Logger) (c card, ok bool, err error) {
	device := filepath.Join(root, "class", "drm", name, "device")
	vendor, err := readString(filepath.Join(device, "vendor"))
	if err != nil || !strings.EqualFold(vendor, VendorID) {
		return card{}, false, nil // not a PCI device, or another vendor's
	}
	render := renderNode(device)
	if render == "" {
		log.V(1).Info("AMD card without a render node skipped (display only)", "card", name)
		return card{}, false, nil
	}
	pci, err := pciAddress(device)
	if err != nil {
		return card{}, false, err
	}
	c = card{name: name, device: device, hwmon: firstDir(filepath.Join(device, "hwmon"))}
	c.info = gpu.Info{Vendor: gpu.VendorAMD, PCIBusID: pci, RenderNode: "/dev/dri/" + render}
	if c.info.Product, _ = readString(filepath.Join(device, "product_name")); c.info.Product == "" {
		id, err := readString(filepath.Join(device, "device"))
		if err != nil {
			return card{}, false, fmt.Errorf("AMD GPU %s: %w", pci, err)
		}
		n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(id), "0x"), 16, 32)
		if err != nil {
			return card{}, false, fmt.Errorf("AMD GPU %s: %s: PCI device ID %q is not hexadecimal", pci, filepath.Join(device, "device"), id)
		}
		c.info.Product = productName(uint32(n))
	}
	if id, _ := readString(filepath.Join(device, "unique_id")); id != "" {
		c.info.UUID = "GPU-" + strings.ToLower(id) // as rocm-smi and ROCR_VISIBLE_DEVICES spell it
	} else {
		serial, _ := readString(filepath.Join(device, "serial_number"))
		c.info.UUID = "GPU-" + uuid.NewSHA1(uuidNamespace, []byte(pci+"/"+serial)).String()
	}
	if c.info.MemoryTotalBytes, err = readUint(filepath.Join(device, "mem_info_vram_total")); err != nil {
		return card{}, false, fmt.Errorf("AMD GPU %s: memory size: %w", pci, err)
	}
	return c, true, nil
}

// renderNode is the name of the card's render node (renderD128), empty if it has none.
func renderNode(device string) string {
	entries, _ := os.ReadDir(filepath.Join(device, "drm"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "renderD") {
			return e.Name()
		}
	}
	return ""
}

// pciAddress reads the card's PCI address from its uevent, or from the name of the PCI device
// directory its device link points to.
func pciAddress(device string) (string, error) {
	if data, err := os.ReadFile(filepath.Join(device, "uevent")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PCI_SLOT_NAME="); ok {
				return strings.ToLower(strings.TrimSpace(v)), nil
			}
		}
	}
	target, err := filepath.EvalSymlinks(device)
	if err != nil {
		return "", fmt.Errorf("PCI address of %s: %w", device, err)
	}
	base := filepath.Base(target)
	if _, _, _, _, err := parsePCI(base); err != nil {
		return "", fmt.Errorf("PCI address of %s: no PCI_SLOT_NAME in its uevent and %w", device, err)
	}
	return base, nil
}

// parsePCI splits a 0000:03:00.0 address.
func parsePCI(addr string) (domain, bus, dev, fn uint64, err error) {
	var d, b, v, f uint64
	if _, err := fmt.Sscanf(addr, "%x:%x:%x.%x", &d, &b, &v, &f); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%q is not a PCI address like 0000:03:00.0", addr)
	}
	return d, b, v, f, nil
}

// kfdNodes maps PCI addresses to the KFD topology node of their GPU. KFD writes a GPU's
// location as domain and location_id, (bus << 8) | (device << 3) | function.
func kfdNodes(root string) map[string]string {
	out := map[string]string{}
	dir := filepath.Join(root, "class", "kfd", "kfd", "topology", "nodes")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		id, err := readUint(filepath.Join(dir, e.Name(), "gpu_id"))
		if err != nil || id == 0 { // CPU nodes have gpu_id 0
			continue
		}
		props, err := os.ReadFile(filepath.Join(dir, e.Name(), "properties"))
		if err != nil {
			continue
		}
		var domain, location uint64
		for _, line := range strings.Split(string(props), "\n") {
			fields := strings.Fields(line)
			if len(fields) != 2 {
				continue
			}
			v, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				continue
			}
			switch fields[0] {
			case "domain":
				domain = v
			case "location_id":
				location = v
			}
		}
		addr := fmt.Sprintf("%04x:%02x:%02x.%x", domain, location>>8, (location>>3)&0x1f, location&0x7)
		out[addr] = e.Name()
	}
	return out
}

func selectVisible(all []card, visible []string) ([]card, error) {
	if len(visible) == 0 || (len(visible) == 1 && strings.EqualFold(visible[0], "all")) {
		return all, nil
	}
	var out []card
	matched := make([]bool, len(visible))
	for _, c := range all {
		selected := false
		for j, v := range visible {
			if v == strconv.Itoa(c.info.Index) || strings.EqualFold(v, c.info.UUID) || strings.EqualFold(v, c.info.PCIBusID) {
				matched[j], selected = true, true
			}
		}
		if selected {
			out = append(out, c)
		}
	}
	for j, ok := range matched {
		if !ok {
			return nil, fmt.Errorf("visible GPU %q matches no AMD GPU index, UUID or PCI address on this node (%d AMD GPUs)", visible[j], len(all))
		}
	}
	return out, nil
}

// Devices lists the managed GPUs.
func (s *Source) Devices() []gpu.Info {
	out := make([]gpu.Info, len(s.cards))
	for i, c := range s.cards {
		out[i] = c.info
	}
	return out
}

// Simulated is false: these are the node's GPUs.
func (s *Source) Simulated() bool { return false }

// Close does nothing: sysfs files are opened per read.
func (s *Source) Close() error { return nil }

// Sample reads memory, busy percentage, temperature and power of every managed GPU.
func (s *Source) Sample() []gpu.Sample {
	out := make([]gpu.Sample, len(s.cards))
	for i, c := range s.cards {
		out[i] = c.sample()
	}
	return out
}

func (c card) sample() gpu.Sample {
	s := gpu.Sample{Index: c.info.Index}
	if _, err := os.Stat(c.device); errors.Is(err, fs.ErrNotExist) {
		s.Err = fmt.Errorf("amdgpu: GPU %s (%s) vanished from sysfs", c.info.PCIBusID, c.name)
		return s
	}
	var err error
	if s.MemoryUsedBytes, err = readUint(filepath.Join(c.device, "mem_info_vram_used")); err != nil {
		s.Err = readFailed(err)
		return s
	}
	if s.MemoryTotalBytes, err = readUint(filepath.Join(c.device, "mem_info_vram_total")); err != nil {
		s.Err = readFailed(err)
		return s
	}
	// The rest is optional: some boards have no busy counter or no power sensor.
	optional := func(path string, scale uint64) uint32 {
		v, err := readUint(path)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && s.Err == nil {
				s.Err = readFailed(err)
			}
			return 0
		}
		return uint32(min(v/scale, 1<<32-1))
	}
	s.UtilizationPercent = min(optional(filepath.Join(c.device, "gpu_busy_percent"), 1), 100)
	if c.hwmon != "" {
		s.TemperatureCelsius = optional(filepath.Join(c.hwmon, "temp1_input"), 1000) // millidegrees
		power := filepath.Join(c.hwmon, "power1_average")                            // microwatts
		if _, err := os.Stat(power); errors.Is(err, fs.ErrNotExist) {
			power = filepath.Join(c.hwmon, "power1_input") // newer kernels on some boards
		}
		s.PowerMilliwatts = optional(power, 1000)
	}
	return s
}

// readFailed words a failed sysfs read as the health reason it becomes; err names the file.
func readFailed(err error) error { return fmt.Errorf("amdgpu sysfs read failed: %w", err) }

// WatchEvents reads every GPU's uncorrectable RAS counters each EventInterval and reports a
// rise as an error event. An unreadable counter is skipped: sampling reports failing reads.
func (s *Source) WatchEvents(ctx context.Context, handle func(gpu.Event)) error {
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		for _, ev := range s.risenRAS() {
			handle(ev)
		}
	}
}

// risenRAS compares the counters with the last seen ones and remembers the new values. A
// counter that went down (a driver reload) is a new baseline, not an error.
func (s *Source) risenRAS() []gpu.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []gpu.Event
	for i, c := range s.cards {
		now := uncorrectable(c.device)
		blocks := make([]string, 0, len(now))
		for b := range now {
			blocks = append(blocks, b)
		}
		slices.Sort(blocks)
		for _, b := range blocks {
			if before, seen := s.ras[i][b]; seen && now[b] > before {
				out = append(out, gpu.Event{Index: c.info.Index, Kind: gpu.EventUncorrectableRAS,
					Detail: fmt.Sprintf("%s %d -> %d", b, before, now[b])})
			}
			s.ras[i][b] = now[b]
		}
	}
	return out
}

// uncorrectable reads the "ue:" count of every ras/<block>_err_count file of a GPU.
func uncorrectable(device string) map[string]uint64 {
	out := map[string]uint64{}
	files, _ := filepath.Glob(filepath.Join(device, "ras", "*_err_count"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ue:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
					out[strings.TrimSuffix(filepath.Base(f), "_err_count")] = n
				}
			}
		}
	}
	return out
}

func readString(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func readUint(path string) (uint64, error) {
	s, err := readString(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a whole number", path, s)
	}
	return v, nil
}

func firstDir(dir string) string {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			return filepath.Join(dir, e.Name())
		}
	}
	return ""
}
