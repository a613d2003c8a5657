package flash

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// BenchmarkFlash flashes the fixture card (1.2 GiB, 71 MiB of it data:
// laid out as Raspberry Pi OS's, mostly zeros) onto a loop device, as .img
// and as .img.xz, and in the same run copies the .img onto it with
// `dd bs=4M conv=fsync`, the usual way. It reports the bytes written and
// flash's time as a fraction of dd's, and how much of the skipped zero runs
// it read back (one 4 KiB block per skipped MiB, and the last MiB).
func BenchmarkFlash(b *testing.B) {
	testkit.RequireTools(b, "dd")
	img, imgXZ := fixture.Image(b, "bookworm")
	st, err := os.Stat(img)
	must(b, err)
	dev := loopDevice(b, st.Size()+64<<20, false)
	dd := func() time.Duration {
		start := time.Now()
		out, err := exec.Command("dd", "if="+img, "of="+dev, "bs=4M", "conv=fsync", "status=none").CombinedOutput()
		if err != nil {
			b.Fatalf("dd: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	for _, card := range []string{img, imgXZ} {
		b.Run(filepath.Base(card), func(b *testing.B) {
			var flashTime, ddTime time.Duration
			var written, sampled int64
			for b.Loop() {
				start := time.Now()
				c, err := OpenCard(context.Background(), card, b.TempDir())
				must(b, err)
				res, err := flashTo(context.Background(), b, c, dev, Options{}, hooks{})
				must(b, err)
				c.Close()
				flashTime += time.Since(start)
				written, sampled = res.Written, res.Samples
				b.StopTimer()
				ddTime += dd()
				b.StartTimer()
			}
			b.ReportMetric(float64(written), "bytes-written/op")
			b.ReportMetric(float64(sampled), "bytes-sampled/op")
			b.ReportMetric(float64(st.Size()), "card-bytes")
			b.ReportMetric(flashTime.Seconds()/ddTime.Seconds(), "time/dd-time")
		})
	}
}
