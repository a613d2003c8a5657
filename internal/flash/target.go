// Package flash holds `magibake flash`: it checks that a device is safe to
// write a card to (a whole, removable, unused block device big enough for
// the card), writes the card's data onto it and reads it back; used by cli.
package flash

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Host is where the facts about block devices are read: the real machine
// by default, a fake tree in tests.
type Host struct {
	Sys       string // sysfs, default /sys
	MountInfo string // default /proc/self/mountinfo
	Swaps     string // default /proc/swaps
}

func (h Host) sys() string       { return or(h.Sys, "/sys") }
func (h Host) mountInfo() string { return or(h.MountInfo, "/proc/self/mountinfo") }
func (h Host) swaps() string     { return or(h.Swaps, "/proc/swaps") }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Target is a block device as sysfs describes it.
type Target struct {
	Path       string // as given
	Name       string // kernel name, e.g. sdb, mmcblk0
	Dev        string // major:minor
	Size       int64  // bytes
	Model      string // vendor and model, when sysfs has them
	Removable  bool   // the kernel's removable flag
	USB, MMC   bool   // on a USB bus, or an MMC/SD host
	Partition  string // the whole device's name when Path is a partition
	Partitions []Part
}

// Part is one partition of a Target.
type Part struct {
	Name, Dev string
	Size      int64
}

// Inspect reads what sysfs says about the block device at path.
func (h Host) Inspect(path string) (*Target, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return nil, fmt.Errorf("%s: not a block device", path)
	}
	dev := fmt.Sprintf("%d:%d", unixMajor(sys.Rdev), unixMinor(sys.Rdev))
	link, err := filepath.EvalSymlinks(filepath.Join(h.sys(), "dev", "block", dev))
	if err != nil {
		return nil, fmt.Errorf("%s: block device %s is not in %s/dev/block: %w", path, dev, h.sys(), err)
	}
	t := &Target{Path: path, Name: filepath.Base(link), Dev: dev}
	if _, err := os.Stat(filepath.Join(link, "partition")); err == nil {
		t.Partition = filepath.Base(filepath.Dir(link))
	}
	t.Size = 512 * readInt(filepath.Join(link, "size"))
	t.Removable = readInt(filepath.Join(link, "removable")) == 1
	t.USB = strings.Contains(link, "/usb")
	t.MMC = strings.Contains(link, "/mmc") || strings.HasPrefix(t.Name, "mmcblk")
	t.Model = strings.Join(strings.Fields(readString(filepath.Join(link, "device", "vendor"))+" "+readString(filepath.Join(link, "device", "model"))), " ")
	entries, _ := os.ReadDir(link)
	for _, e := range entries {
		p := filepath.Join(link, e.Name())
		if _, err := os.Stat(filepath.Join(p, "partition")); err != nil {
			continue
		}
		t.Partitions = append(t.Partitions, Part{Name: e.Name(), Dev: readString(filepath.Join(p, "dev")), Size: 512 * readInt(filepath.Join(p, "size"))})
	}
	return t, nil
}

// Problems lists every reason writing a card of size bytes to t would be
// unsafe or fail, one sentence each; force drops the ones a careful owner
// may overrule (not removable), never the ones that break a running system.
func (h Host) Problems(t *Target, size int64, force bool) ([]string, error) {
	var out []string
	if t.Partition != "" {
		out = append(out, fmt.Sprintf("%s is partition %s of /dev/%s: give the whole device", t.Path, t.Name, t.Partition))
	}
	devs := map[string]string{t.Dev: t.Name}
	for _, p := range t.Partitions {
		devs[p.Dev] = p.Name
	}
	// A partition used through device mapper (LVM, LUKS) is busy too.
	names := []string{t.Name}
	for _, p := range t.Partitions {
		names = append(names, p.Name)
	}
	for _, name := range names {
		for _, holder := range h.holders(name, t.Name) {
			devs[readString(filepath.Join(h.sys(), "class", "block", holder, "dev"))] = holder
		}
	}
	mounts, err := h.mounts()
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		if name, ok := devs[m.dev]; ok {
			what := "mounted"
			if m.point == "/" {
				what = "the running system's root"
			}
			out = append(out, fmt.Sprintf("%s is %s at %s (%s): unmount it first", t.Path, what, m.point, name))
		}
	}
	swaps, err := h.swapDevs()
	if err != nil {
		return nil, err
	}
	for _, s := range swaps {
		if name, ok := devs[s.dev]; ok {
			out = append(out, fmt.Sprintf("%s is in use as swap (%s, %s): swapoff it first", t.Path, s.path, name))
		}
	}
	if size > 0 && t.Size < size {
		out = append(out, fmt.Sprintf("%s holds %d bytes, the card needs %d", t.Path, t.Size, size))
	}
	if !force && !t.Removable && !t.USB && !t.MMC {
		out = append(out, fmt.Sprintf("%s is not a removable, USB or SD/MMC device; if it really is the card, give --force", t.Path))
	}
	return out, nil
}

// holders are the device-mapper devices built on name (a partition of
// disk, or disk itself).
func (h Host) holders(name, disk string) []string {
	dir := filepath.Join(h.sys(), "class", "block", name, "holders")
	if name != disk {
		dir = filepath.Join(h.sys(), "class", "block", disk, name, "holders")
	}
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

type mount struct{ dev, point string }

func (h Host) mounts() ([]mount, error) {
	f, err := os.Open(h.mountInfo())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ... (proc(5))
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 {
			out = append(out, mount{dev: fields[2], point: unescape(fields[4])})
		}
	}
	return out, sc.Err()
}

type swap struct{ dev, path string }

func (h Host) swapDevs() ([]swap, error) {
	data, err := os.ReadFile(h.swaps())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []swap
	for _, line := range strings.Split(string(data), "\n")[1:] {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[1] != "partition" {
			continue // a swap file lives on a mounted file system, found above
		}
		st, err := os.Stat(unescape(fields[0]))
		if err != nil {
			continue
		}
		if s, ok := st.Sys().(*syscall.Stat_t); ok {
			out = append(out, swap{dev: fmt.Sprintf("%d:%d", unixMajor(s.Rdev), unixMinor(s.Rdev)), path: fields[0]})
		}
	}
	return out, nil
}

// unescape undoes the octal escapes (\040 for a space) of /proc files.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func readString(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func readInt(p string) int64 {
	n, _ := strconv.ParseInt(readString(p), 10, 64)
	return n
}

// unixMajor and unixMinor split a Linux dev_t (glibc's encoding).
func unixMajor(d uint64) uint32 { return uint32((d>>8)&0xfff | (d>>32)&^0xfff) }
func unixMinor(d uint64) uint32 { return uint32(d&0xff | (d>>12)&^0xff) }
