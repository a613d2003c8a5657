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
	return h.inspect(path, sys.Rdev)
}

// inspect reads what sysfs says about the block device rdev, known as path.
func (h Host) inspect(path string, rdev uint64) (*Target, error) {
	dev := devString(rdev)
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
	for _, p := range partitions(link) {
		pd := filepath.Join(link, p)
		t.Partitions = append(t.Partitions, Part{Name: p, Dev: readString(filepath.Join(pd, "dev")), Size: 512 * readInt(filepath.Join(pd, "size"))})
	}
	return t, nil
}

// partitions are the names of the partitions in the sysfs directory of a
// block device.
func partitions(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// Read is a file or directory flash reads while it writes: a device that
// holds it must not be written.
type Read struct {
	Path string
	What string // what it is, for messages: "the card", ...
}

// Problems lists every reason writing a card of size bytes to t would be
// unsafe or fail, one sentence each; force drops the ones a careful owner
// may overrule (not removable), never the ones that break a running system
// or destroy what flash reads. reads are the files flash reads while
// writing (the card, the directory it decompresses into). A size of 0 is
// not checked (not known yet).
//
// What counts as on the device is followed to the end: its partitions,
// everything stacked on them (device mapper and md, to any depth), loop
// devices over a file on any of those, and the member devices of a
// mounted btrfs; an overlay mount counts with its directories.
func (h Host) Problems(t *Target, size int64, force bool, reads []Read) ([]string, error) {
	var out []string
	if t.Partition != "" {
		out = append(out, fmt.Sprintf("%s is partition %s of /dev/%s: give the whole device", t.Path, t.Name, t.Partition))
	}
	mounts, err := h.mounts()
	if err != nil {
		return nil, err
	}
	on := h.stack(t, mounts)
	for _, r := range reads {
		if loop := h.loopOver(t.Name, r.Path); loop != "" {
			out = append(out, fmt.Sprintf("%s is a loop device over %s %s itself (%s): writing it would destroy what flash is reading", t.Path, r.What, r.Path, loop))
			continue
		}
		for _, d := range h.fileDevs(r.Path, mounts, 0) {
			if name, ok := on[d]; ok {
				out = append(out, fmt.Sprintf("%s holds %s %s (on %s): writing it would destroy what flash is reading; copy it to another disk first", t.Path, r.What, r.Path, name))
				break
			}
		}
	}
	for _, m := range mounts {
		for _, d := range h.mountDevs(m, mounts, 0) {
			if name, ok := on[d]; ok {
				what := "mounted"
				if m.point == "/" {
					what = "the running system's root"
				}
				out = append(out, fmt.Sprintf("%s is %s at %s (%s): unmount it first", t.Path, what, m.point, name))
				break
			}
		}
	}
	swaps, err := h.swapDevs()
	if err != nil {
		return nil, err
	}
	for _, s := range swaps {
		if name, ok := on[s.dev]; ok {
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

// maxDepth bounds how far stacked devices and overlay directories are
// followed: a cycle (an overlay over itself) must end.
const maxDepth = 16

// stack is every block device whose data lives on t, by major:minor: t,
// its partitions, the holders built on them (device mapper, md) to any
// depth, and loop devices over a file whose file system is on any of
// those, with everything on them in turn.
func (h Host) stack(t *Target, mounts []mount) map[string]string {
	on := map[string]string{}
	var add func(name string, depth int)
	add = func(name string, depth int) {
		dir := filepath.Join(h.sys(), "class", "block", name)
		dev := readString(filepath.Join(dir, "dev"))
		if _, seen := on[dev]; dev == "" || seen || depth > maxDepth {
			return
		}
		on[dev] = name
		for _, p := range partitions(dir) {
			add(p, depth+1)
		}
		holders, _ := os.ReadDir(filepath.Join(dir, "holders"))
		for _, e := range holders {
			add(e.Name(), depth+1)
		}
	}
	add(t.Name, 0)
	loops := h.loops()
	for changed := true; changed; {
		changed = false
		for _, l := range loops {
			if _, in := on[l.dev]; in {
				continue
			}
			for _, d := range h.fileDevs(l.backing, mounts, 0) {
				if _, ok := on[d]; ok {
					add(l.name, 0)
					changed = true
					break
				}
			}
		}
	}
	return on
}

type loop struct{ name, dev, backing string }

// loops are the loop devices bound to a file.
func (h Host) loops() []loop {
	entries, _ := os.ReadDir(filepath.Join(h.sys(), "class", "block"))
	var out []loop
	for _, e := range entries {
		dir := filepath.Join(h.sys(), "class", "block", e.Name())
		backing := readString(filepath.Join(dir, "loop", "backing_file"))
		if backing == "" {
			continue
		}
		out = append(out, loop{name: e.Name(), dev: readString(filepath.Join(dir, "dev")), backing: strings.TrimSuffix(backing, " (deleted)")})
	}
	return out
}

// loopOver names the loop device, name itself or one it is built on (to
// any depth), whose backing file is path; "" when there is none.
func (h Host) loopOver(name, path string) string {
	want, err := os.Stat(path)
	if err != nil {
		return ""
	}
	var find func(name string, depth int) string
	find = func(name string, depth int) string {
		if depth > maxDepth {
			return ""
		}
		dir := filepath.Join(h.sys(), "class", "block", name)
		if backing := readString(filepath.Join(dir, "loop", "backing_file")); backing != "" {
			if st, err := os.Stat(backing); err == nil && os.SameFile(st, want) {
				return name
			}
		}
		slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
		for _, e := range slaves {
			if l := find(e.Name(), depth+1); l != "" {
				return l
			}
		}
		return ""
	}
	return find(name, 0)
}

// fileDevs are the block devices that hold the file or directory at path
// (none when it lies on no block device, or does not exist).
func (h Host) fileDevs(path string, mounts []mount, depth int) []string {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	dev := devString(sys.Dev)
	if unixMajor(sys.Dev) != 0 {
		return []string{dev}
	}
	for _, m := range mounts {
		if m.dev == dev {
			return h.mountDevs(m, mounts, depth)
		}
	}
	// A btrfs subvolume's files have an anonymous device of their own, not
	// the one mountinfo shows: the mount is the one the path lies under.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil
	}
	best := -1
	for i, m := range mounts {
		if (best < 0 || len(m.point) >= len(mounts[best].point)) &&
			(real == m.point || strings.HasPrefix(real, strings.TrimSuffix(m.point, "/")+"/")) {
			best = i
		}
	}
	if best < 0 || !strings.HasPrefix(mounts[best].dev, "0:") {
		return nil
	}
	return h.mountDevs(mounts[best], mounts, depth)
}

// mountDevs are the block devices a mount's file system lives on: its
// device, or for the anonymous devices (major 0) of btrfs every member of
// the file system and of overlay whatever holds its directories.
func (h Host) mountDevs(m mount, mounts []mount, depth int) []string {
	if !strings.HasPrefix(m.dev, "0:") {
		return []string{m.dev}
	}
	switch m.fstype {
	case "btrfs":
		return h.btrfsDevs(m.source)
	case "overlay":
		if depth >= maxDepth {
			return nil
		}
		var out []string
		for _, opt := range strings.Split(m.options, ",") {
			key, value, _ := strings.Cut(opt, "=")
			if key != "lowerdir" && key != "upperdir" && key != "workdir" {
				continue
			}
			for _, dir := range strings.Split(value, ":") {
				if dir != "" {
					out = append(out, h.fileDevs(dir, mounts, depth+1)...)
				}
			}
		}
		return out
	}
	return nil
}

// btrfsDevs are the member devices of the btrfs mounted from source: the
// ones sysfs lists for the file system that has source, or source alone.
func (h Host) btrfsDevs(source string) []string {
	st, err := os.Stat(source)
	if err != nil {
		return nil
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || st.Mode()&os.ModeDevice == 0 {
		return nil
	}
	dev := devString(sys.Rdev)
	link, err := filepath.EvalSymlinks(filepath.Join(h.sys(), "dev", "block", dev))
	if err != nil {
		return []string{dev}
	}
	fss, _ := os.ReadDir(filepath.Join(h.sys(), "fs", "btrfs"))
	for _, fs := range fss {
		members, _ := os.ReadDir(filepath.Join(h.sys(), "fs", "btrfs", fs.Name(), "devices"))
		var out []string
		has := false
		for _, m := range members {
			has = has || m.Name() == filepath.Base(link)
			out = append(out, readString(filepath.Join(h.sys(), "class", "block", m.Name(), "dev")))
		}
		if has {
			return out
		}
	}
	return []string{dev}
}

// mount is one line of mountinfo.
type mount struct{ dev, point, fstype, source, options string }

func (h Host) mounts() ([]mount, error) {
	f, err := os.Open(h.mountInfo())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20) // overlay lines list every lower directory
	for sc.Scan() {
		// ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS (proc(5))
		before, after, _ := strings.Cut(sc.Text(), " - ")
		fields, rest := strings.Fields(before), strings.Fields(after)
		if len(fields) < 5 {
			continue
		}
		m := mount{dev: fields[2], point: unescape(fields[4])}
		if len(rest) >= 3 {
			m.fstype, m.source, m.options = rest[0], unescape(rest[1]), unescape(rest[2])
		}
		out = append(out, m)
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
			out = append(out, swap{dev: devString(s.Rdev), path: fields[0]})
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

// devString is a dev_t as sysfs and mountinfo write it, major:minor.
func devString(d uint64) string { return fmt.Sprintf("%d:%d", unixMajor(d), unixMinor(d)) }

// unixMajor and unixMinor split a Linux dev_t (glibc's encoding).
func unixMajor(d uint64) uint32 { return uint32((d>>8)&0xfff | (d>>32)&^0xfff) }
func unixMinor(d uint64) uint32 { return uint32(d&0xff | (d>>12)&^0xff) }
