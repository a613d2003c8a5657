package bake

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/output"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/testkit"
)

// TestEditConfigOnCard edits the small card's config.txt: the lines are
// added after the base's, fsck.fat takes the partition, mtools reads the
// file back as ApplyConfig made it, and verification reads it back too.
func TestEditConfigOnCard(t *testing.T) {
	testkit.RequireTools(t, "fsck.fat", "mtype")
	dir := t.TempDir()
	disk := smallCard(t, dir)
	lines := []plan.ConfigLine{{Section: "all", Line: "dtparam=poe_fan_temp0=50000"}, {Section: "pi4", Line: "arm_boost=1"}}
	p := &plan.Plan{Node: "melchior", MTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Ops: []plan.Op{{Partition: plan.Boot, Kind: plan.EditConfig, Path: "/config.txt", ConfigLines: lines}}}
	base, layout := fixture.OpenBase(t, disk)
	dev := image.NewDevice(base, base.Size())
	m, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.img")
	if err := output.Write(context.Background(), out, dev, dev.Size(), func(r io.ReaderAt, size int64) error {
		return VerifyCard(r, size, layout, p, m)
	}); err != nil {
		t.Fatal(err)
	}
	card := fixture.OpenCard(t, out)
	card.Fsck(t)
	got := card.ReadBoot(t, "/config.txt")
	base0 := "[all]\n" + strings.Repeat("# padding line for a long config\n", 200)
	if got != plan.ApplyConfig(base0, lines) || !strings.HasPrefix(got, base0) || !strings.Contains(got, "[pi4]\narm_boost=1\n") {
		t.Errorf("config.txt reads back as ...%q", got[len(got)-min(len(got), 200):])
	}
	if missing := plan.ConfigMissing(got, lines); len(missing) > 0 {
		t.Errorf("the card lacks %v", missing)
	}
}

// TestExpectRefusesBase: a file the settings need and the base lacks stops
// the bake with the profile's words, before anything is written.
func TestExpectRefusesBase(t *testing.T) {
	dir := t.TempDir()
	disk := smallCard(t, dir)
	before := fileSum(t, disk)
	why := "profiles/cluster.yaml:12: timezone: Europe/Berln is not a zone the base ships"
	p := &plan.Plan{Node: "melchior", MTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Ops:     []plan.Op{{Partition: plan.Root, Kind: plan.WriteFile, Path: "/etc/timezone", Content: []byte("Europe/Berln\n"), Mode: 0o644}},
		Expects: []plan.Expect{{Path: "/etc/hostname", Why: "has it"}, {Path: "/usr/share/zoneinfo/Europe/Berln", Why: why}}}
	base, layout := fixture.OpenBase(t, disk)
	dev := image.NewDevice(base, base.Size())
	_, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "test"})
	if !errors.Is(err, ErrExpect) || !InputProblem(err) || !strings.Contains(err.Error(), why+" (no /usr/share/zoneinfo/Europe/Berln)") {
		t.Fatalf("Apply: %v", err)
	}
	if d := dev.DirtyPages(); len(d) != 0 {
		t.Errorf("%d pages written before the refusal", len(d))
	}
	if fileSum(t, disk) != before {
		t.Error("the base changed")
	}
	p.Expects = []plan.Expect{{Path: "/etc/hostname", Contains: `raspberry`, Why: "has the line"}, {Path: "/etc/hosts", Contains: `raspberrypi\s+x`, Why: "no such line"}}
	if _, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "test"}); !errors.Is(err, ErrExpect) || err.Error() != "the base lacks what the profile needs: no such line" {
		t.Errorf("Apply with a line expected: %v", err)
	}
	p.Expects = []plan.Expect{{Path: "/etc", Why: "a directory is not a file"}}
	if _, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "test"}); !errors.Is(err, ErrExpect) || !strings.Contains(err.Error(), "/etc is a directory") {
		t.Errorf("Apply with a directory expected: %v", err)
	}
}
