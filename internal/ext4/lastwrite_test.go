package ext4

import (
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// LastWrite is what a bake dates its files with when SOURCE_DATE_EPOCH is not
// set, so it must read the superblock's own dates exactly, past 2038 too.
// The dates are poked into the superblock (debugfs -w would stamp its own
// write time on close).
func TestLastWrite(t *testing.T) {
	tree := t.TempDir()
	img := mkfs(t, tree, 8)
	cases := []struct {
		name        string
		wtime, mkfs int64
		want        time.Time
	}{
		{"write time", time.Date(2025, 5, 13, 10, 20, 30, 0, time.UTC).Unix(), 1700000000, time.Date(2025, 5, 13, 10, 20, 30, 0, time.UTC)},
		{"after 2106 (hi byte)", time.Date(2110, 2, 28, 12, 0, 0, 0, time.UTC).Unix(), 0, time.Date(2110, 2, 28, 12, 0, 0, 0, time.UTC)},
		{"no write time: mkfs time", 0, time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC).Unix(), time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)},
		{"neither", 0, 0, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, superSize)
			if _, err := f.ReadAt(b, superOffset); err != nil {
				t.Fatal(err)
			}
			binary.LittleEndian.PutUint32(b[0x30:], uint32(c.wtime))
			b[0x274] = byte(c.wtime >> 32)
			binary.LittleEndian.PutUint32(b[0x108:], uint32(c.mkfs))
			b[0x276] = byte(c.mkfs >> 32)
			super{b}.updateChecksum()
			if _, err := f.WriteAt(b, superOffset); err != nil {
				t.Fatal(err)
			}
			fsck(t, img)
			// The offsets are the ones e2fsprogs reads (dumpe2fs 1.47.0
			// ignores s_wtime_hi, so only dates before 2106 are compared).
			if c.wtime != 0 && c.wtime>>32 == 0 {
				cmd := exec.Command("dumpe2fs", "-h", img)
				cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("dumpe2fs -h: %v", err)
				}
				line := "Last write time:          " + c.want.Format("Mon Jan _2 15:04:05 2006")
				if !strings.Contains(string(out), line) {
					t.Fatalf("dumpe2fs -h does not show %q:\n%s", line, out)
				}
			}
			st, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			fsys, err := Open(f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			if got := fsys.LastWrite(); !got.Equal(c.want) {
				t.Errorf("LastWrite() = %v, want %v", got, c.want)
			}
		})
	}
}
