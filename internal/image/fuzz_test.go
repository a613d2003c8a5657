package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/magibake/magibake/internal/compression"
)

// FuzzReadLayout feeds arbitrary partition tables to ReadLayout: it must
// never panic, every error must be ErrBadImage, and an accepted layout must
// hold a FAT32 and a Linux partition inside the image, not overlapping.
func FuzzReadLayout(f *testing.F) {
	const size = 8 << 20
	good := mkDisk(size, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 8192})
	f.Add(good[:512])
	f.Add(mkDisk(512, [3]int64{0xee, 1, 100000}))
	f.Add(mkDisk(512, [3]int64{0x0b, 1, 1}, [3]int64{0x83, 2, 1}, [3]int64{0x83, 3, 1}, [3]int64{0x05, 4, 100}))
	f.Add(mkDisk(512, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 4096, 8192}))
	f.Add(mkDisk(512, [3]int64{0x0c, 0xffffffff, 0xffffffff}, [3]int64{0x83, 6144, 8192}))
	f.Add([]byte("not a disk"))
	f.Fuzz(func(t *testing.T, mbr []byte) {
		// The fuzzed bytes are the start of an 8 MiB disk.
		disk := make([]byte, size)
		copy(disk, mbr)
		for _, n := range []int64{int64(len(mbr)), size} {
			l, err := ReadLayout(bytes.NewReader(disk[:n]), n)
			if err != nil {
				if !errors.Is(err, ErrBadImage) {
					t.Fatalf("error %v is not ErrBadImage", err)
				}
				continue
			}
			for _, p := range []Partition{l.Boot, l.Root} {
				if p.Start <= 0 || p.Size <= 0 || p.Start+p.Size > n || p.Start%512 != 0 {
					t.Fatalf("partition %+v outside the %d-byte image", p, n)
				}
			}
			if l.Boot.Type != 0x0b && l.Boot.Type != 0x0c || l.Root.Type != 0x83 || l.Boot.Index == l.Root.Index {
				t.Fatalf("layout %+v", l)
			}
			if l.Boot.Start < l.Root.Start+l.Root.Size && l.Root.Start < l.Boot.Start+l.Boot.Size {
				t.Fatalf("overlapping layout %+v", l)
			}
			if l.DiskID != binary.LittleEndian.Uint32(disk[440:]) {
				t.Fatalf("disk ID %08x", l.DiskID)
			}
		}
	})
}

// FuzzOpenBase feeds arbitrary files (mostly damaged .img.xz) to OpenBase:
// it must never panic or hang, must fail with ErrBadImage on bad xz, must
// leave no temp file, and what it accepts must read back at its size.
func FuzzOpenBase(f *testing.F) {
	seed, err := os.ReadFile("testdata/fuzz-seed.xz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Add(append(bytes.Clone(seed), 0, 0, 0, 0))
	f.Add(append(bytes.Clone(seed), seed...))
	f.Add(seed[:12])
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Add(mkDisk(4096, [3]int64{0x0c, 1, 2}, [3]int64{0x83, 3, 4}))
	dir := f.TempDir()
	// The seed must decode, or the fuzzer only ever explores the error paths.
	if err := os.WriteFile(filepath.Join(dir, "seed.img.xz"), seed, 0o644); err != nil {
		f.Fatal(err)
	}
	if b, err := OpenBase(context.Background(), filepath.Join(dir, "seed.img.xz"), dir); err != nil {
		f.Fatalf("seed: %v", err)
	} else if _, err := ReadLayout(b, b.Size()); err != nil || !b.Compressed {
		f.Fatalf("seed layout: %v", err)
	} else {
		b.Close()
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "base.img.xz")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := OpenBase(context.Background(), p, dir)
		if err == nil {
			buf := make([]byte, min(b.Size(), 1<<16))
			if _, rerr := b.ReadAt(buf, 0); rerr != nil && b.Size() > 0 {
				t.Errorf("read back: %v", rerr)
			}
			if !b.Compressed && b.Size() != int64(len(data)) {
				t.Errorf("raw base size %d, file %d", b.Size(), len(data))
			}
			b.Close()
		} else if compression.Detect(data) == compression.XZ && !errors.Is(err, ErrBadImage) {
			t.Errorf("bad xz gives %v, not ErrBadImage", err)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".magibake-base-*")); len(left) > 0 {
			t.Fatalf("temp files left: %v", left)
		}
	})
}
