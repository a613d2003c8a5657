package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// TestReproducible bakes the same card twice, a second apart, into different
// directories, without SOURCE_DATE_EPOCH: the two cards must be the same
// bytes, and the baked files dated as the base's root filesystem.
func TestReproducible(t *testing.T) {
	testkit.RequireTools(t, "debugfs", "dumpe2fs")
	noEpoch := func(k string) string {
		if k == "SOURCE_DATE_EPOCH" {
			return ""
		}
		return env[k]
	}
	img, imgXZ := fixture.Image(t, "bookworm")
	var cards []string
	for i := 0; i < 2; i++ {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond) // a clock read would now differ
		}
		out := filepath.Join(t.TempDir(), "cards", strconv.Itoa(i))
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		o := Options{Sources: Sources{Getenv: noEpoch}, Nodes: []string{"caspar"}, OutDir: out, Base: imgXZ, Version: "test"}
		if err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		cards = append(cards, filepath.Join(out, "caspar.img"))
	}
	if testkit.SHA256File(t, cards[0]) != testkit.SHA256File(t, cards[1]) {
		t.Fatalf("two bakes of caspar from the same inputs differ: %s and %s", cards[0], cards[1])
	}

	base := fixture.OpenCard(t, img)
	cmd := exec.Command("dumpe2fs", "-h", base.RootSpec())
	cmd.Env = append(os.Environ(), "TZ=UTC", "LC_ALL=C")
	sb, err := cmd.Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h %s: %v", base.RootSpec(), err)
	}
	m := regexp.MustCompile(`(?m)^Last write time:\s+(.+)$`).FindSubmatch(sb)
	if m == nil {
		t.Fatalf("no last write time in dumpe2fs -h:\n%s", sb)
	}
	want, err := time.Parse("Mon Jan _2 15:04:05 2006", strings.TrimSpace(string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	st := fixture.OpenCard(t, cards[0]).Debugfs(t, "stat /etc/hostname")
	mt := regexp.MustCompile(`mtime: 0x([0-9a-f]+)`).FindStringSubmatch(st)
	if mt == nil {
		t.Fatalf("no mtime in debugfs stat /etc/hostname:\n%s", st)
	}
	sec, _ := strconv.ParseInt(mt[1], 16, 64)
	if got := time.Unix(sec, 0).UTC(); !got.Equal(want) {
		t.Errorf("/etc/hostname dated %v, want the base root filesystem's last write %v", got, want)
	}
}
