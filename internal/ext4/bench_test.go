package ext4

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// cowDev reads from a base file and keeps writes in memory, so one base
// image serves every benchmark iteration unchanged.
type cowDev struct {
	base  io.ReaderAt
	dirty map[int64][]byte // 4 KiB pages
}

const page = 4096

func (c *cowDev) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pg, in := (off+int64(n))/page, (off+int64(n))%page
		chunk := min(int64(len(p)-n), page-in)
		if d, ok := c.dirty[pg]; ok {
			copy(p[n:n+int(chunk)], d[in:])
		} else if _, err := c.base.ReadAt(p[n:n+int(chunk)], off+int64(n)); err != nil {
			return n, err
		}
		n += int(chunk)
	}
	return n, nil
}

func (c *cowDev) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		pg, in := (off+int64(n))/page, (off+int64(n))%page
		chunk := min(int64(len(p)-n), page-in)
		d, ok := c.dirty[pg]
		if !ok {
			d = make([]byte, page)
			if _, err := c.base.ReadAt(d, pg*page); err != nil {
				return n, err
			}
			c.dirty[pg] = d
		}
		copy(d[in:], p[n:n+int(chunk)])
		n += int(chunk)
	}
	return n, nil
}

// BenchmarkNodeOverlay applies a typical node overlay (30 files, a few
// directories and symlinks) to a 2 GiB Pi-OS-shaped root filesystem. It
// reports the bytes read from the device per bake and what fraction of the
// partition that is: the writer must touch metadata only.
func BenchmarkNodeOverlay(b *testing.B) {
	tree, _ := makeTree(b, 400)
	img := mkfs(b, tree, 2048, "-O", "^64bit,^huge_file")
	fh, err := os.Open(img)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	st, _ := fh.Stat()
	var read int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dev := &cowDev{base: fh, dirty: map[int64][]byte{}}
		f, err := Open(dev, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		applyTypicalOverlay(b, f)
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		read += f.BytesRead()
	}
	b.ReportMetric(float64(read)/float64(b.N), "bytes-read/op")
	b.ReportMetric(float64(read)/float64(b.N)/float64(st.Size()), "read-fraction/op")
}

func applyTypicalOverlay(tb testing.TB, f *FS) {
	for _, d := range []string{"/etc/NetworkManager/system-connections", "/etc/dhcp", "/etc/default",
		"/etc/sysctl.d", "/etc/iptables", "/etc/systemd/system/multi-user.target.wants",
		"/etc/systemd/system/network-online.target.wants", "/home/pi/.ssh", "/etc/magibake", "/var/lib/magibake/debs"} {
		if err := f.MkdirAll(d, 0o755, 0, 0, testTime); err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < 26; i++ {
		p := fmt.Sprintf("/etc/magibake/file-%02d.conf", i)
		if i < 6 {
			p = filepath.Join([]string{"/etc", "/etc/dhcp", "/etc/default", "/etc/sysctl.d", "/etc/iptables", "/home/pi/.ssh"}[i], "overlay.conf")
		}
		if err := f.WriteFile(p, payload(int64(i), 200+i*150), 0o644, 0, 0, testTime); err != nil {
			tb.Fatal(err)
		}
	}
	for _, w := range []string{"hostname", "hosts", "machine-info", "motd"} {
		if err := f.WriteFile("/etc/"+w, []byte("caspar\n"), 0o644, 0, 0, testTime); err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		if err := f.Symlink(fmt.Sprintf("/etc/systemd/system/u%d.service", i),
			fmt.Sprintf("/etc/systemd/system/multi-user.target.wants/u%d.service", i), 0, 0, testTime); err != nil {
			tb.Fatal(err)
		}
	}
}
