package cli

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// The codes cli.Execute returns; docs/reliability.md lists them.
const (
	relCodeInternal = 1
	relCodeUsage    = 2
	relCodeInput    = 3
	relCodeSignal   = 130
)

// reliabilityCase is one bad input of issue 7: run magibake with args and
// expect code and a single "magibake: " line holding every want.
type reliabilityCase struct {
	name string
	args []string
	code int
	want []string
	// base is the file whose sha256 must not change ("" when none).
	base string
	// outDir is the directory that must hold no output and no temp file.
	outDir string
}

// TestBadInputReliability runs every bad-input case of issue 7 through the
// CLI and checks: the exit code, one line naming the file and the problem,
// nothing left in the output directory (output or temp file), no temp file
// beside the base, and the base's sha256 unchanged.
func TestBadInputReliability(t *testing.T) {
	setEnv(t)
	for _, tc := range reliabilityCases(t) {
		t.Run(tc.name, func(t *testing.T) { runReliabilityCase(t, tc) })
	}
}

func runReliabilityCase(t *testing.T, tc reliabilityCase) {
	t.Helper()
	var before string
	if tc.base != "" {
		before = testkit.SHA256File(t, tc.base)
	}
	code, stdout, stderr := execute(t, tc.args...)
	t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
	if code != tc.code {
		t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
	}
	// Progress lines may come first; the error is one line, the last,
	// "magibake: ..." or "magibake COMMAND: ...".
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	msg := lines[len(lines)-1]
	errLines := 0
	for _, l := range lines {
		if errLine.MatchString(l) {
			errLines++
		}
	}
	if errLines != 1 || !errLine.MatchString(msg) || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("want one error line at the end of stderr, got %q", stderr)
	}
	for _, w := range tc.want {
		if !strings.Contains(msg, w) {
			t.Errorf("error line %q lacks %q", msg, w)
		}
	}
	if stdout != "" {
		t.Errorf("stdout not empty: %q", stdout)
	}
	if tc.outDir != "" {
		if left, err := os.ReadDir(tc.outDir); err != nil || len(left) > 0 {
			t.Errorf("output dir %s holds %v (%v), want nothing", tc.outDir, relNames(left), err)
		}
	}
	if tc.base != "" {
		if after := testkit.SHA256File(t, tc.base); after != before {
			t.Errorf("base %s changed: sha256 %s, was %s", tc.base, after, before)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(tc.base), ".magibake-*")); len(left) > 0 {
			t.Errorf("temp files beside the base: %v", left)
		}
	}
}

func reliabilityCases(t *testing.T) []reliabilityCase {
	dir := t.TempDir()
	out := func() string { return t.TempDir() }
	var cases []reliabilityCase
	add := func(name string, base, outDir string, code int, want []string, args ...string) {
		cases = append(cases, reliabilityCase{name: name, args: args, code: code, want: want, base: base, outDir: outDir})
	}
	build := func(name, base string, want []string, extra ...string) {
		o := out()
		add(name, base, o, relCodeInput, want, append([]string{"build", "caspar", "--base", base, "--out-dir", o}, extra...)...)
	}

	// Base image: missing, unreadable, not an image, compressed wrongly.
	good := relDisk(t, dir, "good.img", [3]uint32{0x0c, 2048, 4096}, [3]uint32{0x83, 6144, 4096})
	missing := filepath.Join(dir, "nope.img.xz")
	o := out()
	add("missing base", "", o, relCodeInput, []string{missing, "no such file or directory"}, "build", "caspar", "--base", missing, "--out-dir", o)
	o2 := out()
	add("missing base where the output would go", "", o2, relCodeInput, []string{"base " + filepath.Join(o2, "caspar.img") + ": no such file"},
		"build", "caspar", "--base", filepath.Join(o2, "caspar.img"), "--out-dir", o2)
	isDir := filepath.Join(dir, "base-dir.img")
	os.Mkdir(isDir, 0o755)
	o = out()
	add("unreadable base (a directory)", "", o, relCodeInput, []string{isDir, "not a regular file"}, "build", "caspar", "--base", isDir, "--out-dir", o)
	dangling := filepath.Join(dir, "dangling.img")
	os.Symlink(filepath.Join(dir, "gone.img"), dangling)
	o = out()
	add("unreadable base (dangling symlink)", "", o, relCodeInput, []string{dangling, "no such file or directory"}, "build", "caspar", "--base", dangling, "--out-dir", o)

	xzData := relXZ(t, dir, good)
	truncated := relWrite(t, dir, "truncated.img.xz", xzData[:len(xzData)/2])
	build("truncated .img.xz", truncated, []string{truncated, "xz data is truncated"})
	badCRC := relWrite(t, dir, "badcrc.img.xz", relFlipCheck(t, dir, xzData))
	build("corrupt xz block (bad CRC64)", badCRC, []string{badCRC, "xz data is corrupt: xz: checksum error for block"})
	trailing := relWrite(t, dir, "trailing.img.xz", append(bytes.Clone(xzData), "trailing garbage after the stream"...))
	build("xz with trailing garbage", trailing, []string{trailing, "unexpected data after stream"})
	zst := relWrite(t, dir, "base.img.zst", []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4})
	build("zstd base", zst, []string{zst, "zstd/gzip compression is not supported"})

	notDisk := relWrite(t, dir, "notes.txt", []byte(strings.Repeat("just some text\n", 100)))
	build("not a disk image", notDisk, []string{notDisk, "not a disk image (no MBR boot signature)"})
	tiny := relWrite(t, dir, "tiny.img", []byte("x"))
	build("file smaller than a partition table", tiny, []string{tiny, "smaller than a partition table"})
	gpt := relDisk(t, dir, "gpt.img", [3]uint32{0xee, 1, 100000})
	build("GPT disk", gpt, []string{gpt, "GPT disk"})
	noFAT := relDisk(t, dir, "nofat.img", [3]uint32{0x83, 2048, 4096})
	build("MBR without FAT32", noFAT, []string{noFAT, "no FAT32 boot partition"})
	noExt4 := relDisk(t, dir, "noext4.img", [3]uint32{0x0c, 2048, 4096})
	build("MBR without ext4", noExt4, []string{noExt4, "no Linux root partition"})
	overlap := relDisk(t, dir, "overlap.img", [3]uint32{0x0c, 2048, 4096}, [3]uint32{0x83, 4096, 4096})
	build("partitions overlap", overlap, []string{overlap, "partitions 1 and 2 overlap"})
	beyond := relDisk(t, dir, "beyond.img", [3]uint32{0x0c, 2048, 4096}, [3]uint32{0x83, 6144, 1 << 20})
	build("partition beyond the end of the file", beyond, []string{beyond, "partition 2 ends at byte", "beyond the end"})

	pinned := relProfiles(t, dir, "pinned", func(cluster string) string {
		return cluster + "base:\n  url: https://example.invalid/raspios.img.xz\n  sha256: " + strings.Repeat("ab", 32) + "\n"
	})
	build("wrong sha256 against the pin", good, []string{good, "sha256 is", "but the profile pins " + strings.Repeat("ab", 32)}, "--profiles", pinned)

	// The root filesystem of a real Pi-OS-shaped base, changed with debugfs.
	img, _ := fixture.Image(t, "bookworm")
	for _, f := range []struct{ name, req, want string }{
		{"ext4 with inline_data", "feature inline_data", "unsupported: incompatible feature inline_data"},
		{"ext4 with bigalloc", "feature bigalloc", "unsupported: feature bigalloc"},
		{"ext4 journal needs recovery", "feature needs_recovery", "needs_recovery"},
		{"ext4 not cleanly unmounted", "ssv state 0", "not cleanly unmounted (run e2fsck first)"},
		{"ext4 with recorded errors", "ssv state 3", "recorded errors (run e2fsck first)"},
	} {
		base := relFixtureCopy(t, img, strings.ReplaceAll(f.name, " ", "-")+".img")
		relDebugfs(t, base, f.req)
		build(f.name, base, []string{base, f.want})
	}
	full := relFixtureCopy(t, img, "full.img")
	relFillRoot(t, full, 100)
	bigOverlay := t.TempDir()
	relWrite(t, relMkdir(t, filepath.Join(bigOverlay, "common", "root", "opt")), "big.bin", relRandom(2<<20))
	build("root fs too full for the overlay", full, []string{full, "/opt/big.bin", "no space left", "the root filesystem needs", "KiB more"}, "--overlays", bigOverlay)
	fullBoot := relFixtureCopy(t, img, "full-boot.img")
	relFillBoot(t, fullBoot, 512<<10)
	bootOverlay := t.TempDir()
	relWrite(t, relMkdir(t, filepath.Join(bootOverlay, "common", "boot")), "big.bin", relRandom(2<<20))
	build("boot partition too full for the overlay", fullBoot, []string{"base " + fullBoot, "the boot partition is full (512.0 MiB)", "writing /big.bin (2.0 MiB) failed", "MiB to it in all"}, "--overlays", bootOverlay)

	// Output paths.
	missingDir := filepath.Join(dir, "no", "such", "dir")
	add("output in a missing directory", good, "", relCodeInput, []string{missingDir + "/c.img", "directory " + missingDir + " does not exist"},
		"build", "caspar", "--base", good, "-o", filepath.Join(missingDir, "c.img"))
	ro := relReadOnlyDir(t)
	add("output in a read-only directory", good, ro, relCodeInput, []string{ro, "not writable"},
		"build", "caspar", "--base", good, "-o", filepath.Join(ro, "c.img"))
	goodCopy := relWrite(t, relMkdir(t, filepath.Join(dir, "same")), "base.img", relRead(t, good))
	add("output equal to the base", goodCopy, "", relCodeInput, []string{goodCopy, "is the base image"},
		"build", "caspar", "--base", goodCopy, "-o", goodCopy)
	add("output equal to the base, another spelling", goodCopy, "", relCodeInput, []string{"is the base image"},
		"build", "caspar", "--base", goodCopy, "-o", filepath.Join(dir, "same", ".", "..", "same", "base.img"))
	link := filepath.Join(dir, "link-to-base.img")
	os.Symlink(goodCopy, link)
	add("output a symlink to the base", goodCopy, "", relCodeInput, []string{"is the base image"},
		"build", "caspar", "--base", goodCopy, "-o", link)
	add("unsupported output format", good, "", relCodeUsage, []string{"c.img.gz", ".gz is not an output format; write a .img, .img.xz or .img.zst"},
		"build", "caspar", "--base", good, "-o", filepath.Join(out(), "c.img.gz"))
	add("output name without a card format", good, "", relCodeUsage, []string{"caspar.iso: its name gives no card format; name it .img (raw), .img.xz or .img.zst"},
		"build", "caspar", "--base", good, "-o", filepath.Join(out(), "caspar.iso"))

	// Disk full: the output directory is a 16 MiB tmpfs. From a raw .img the
	// output write fails; from an .img.xz, the decompression beside it.
	small := relTmpfs(t, 0, "size=16m")
	add("disk full while writing the output", img, small, relCodeInput, []string{"output " + small + "/caspar.img", "no space left on device"},
		"build", "caspar", "--base", img, "--out-dir", small)
	_, imgXZ := fixture.Image(t, "bookworm")
	small2 := relTmpfs(t, 0, "size=16m")
	add("disk full while decompressing the base", imgXZ, small2, relCodeInput, []string{imgXZ, "decompress into " + small2 + ": no space left on device"},
		"build", "caspar", "--base", imgXZ, "--out-dir", small2, "--no-cache")

	// Profiles: each kind of validation error, through the CLI.
	for _, p := range []struct{ name, file, old, new, want string }{
		{"YAML syntax error", "cluster.yaml", "subnet: 10.3.50.0/24", "subnet: [10.3.50.0/24", "cluster.yaml:"},
		{"unknown key", "cluster.yaml", "uplink: wlan0", "uplink: wlan0\nuplinks: wlan1", "cluster.yaml:"},
		{"address outside the subnet", "cluster.yaml", "head_address: 10.3.50.1/24", "head_address: 10.3.51.1/24", "head_address"},
		{"reversed DHCP range", "cluster.yaml", "[10.3.50.10, 10.3.50.20]", "[10.3.50.20, 10.3.50.10]", "dhcp.range"},
		{"bad hostname", "melchior.yaml", "hostname: melchior", "hostname: mel_chior", "melchior.yaml:"},
		{"second head", "melchior.yaml", "role: worker", "role: head", "head"},
		{"bad MAC", "balthasar.yaml", "role: worker", "role: worker\nmac: dc:a6:32:zz:02:03", "balthasar.yaml:"},
		{"missing secret file", "cluster.yaml", "passphrase: {env: MAGIBAKE_WIFI_PASSPHRASE}", "passphrase: {file: wifi-pass}", "wifi-pass"},
		{"unset environment variable", "cluster.yaml", "country: {env: MAGIBAKE_WIFI_COUNTRY}", "country: {env: MAGIBAKE_NO_SUCH_VAR}", "MAGIBAKE_NO_SUCH_VAR is not set"},
	} {
		pd := relProfiles(t, dir, "p-"+strings.ReplaceAll(p.name, " ", "-"), nil)
		relEdit(t, filepath.Join(pd, p.file), p.old, p.new)
		build("profile: "+p.name, good, []string{filepath.Join(pd, p.file), p.want}, "--profiles", pd)
	}
	noCluster := relProfiles(t, dir, "p-no-cluster", nil)
	os.Remove(filepath.Join(noCluster, "cluster.yaml"))
	build("profile: no cluster.yaml", good, []string{filepath.Join(noCluster, "cluster.yaml"), "missing"}, "--profiles", noCluster)
	o = out()
	add("profile: unknown node", good, o, relCodeInput, []string{`unknown node "gaspar"`, "caspar, balthasar, melchior"},
		"build", "gaspar", "--base", good, "--out-dir", o)
	add("plan: unknown node", "", "", relCodeInput, []string{`unknown node "gaspar"`}, "plan", "gaspar")

	// User overlays: template errors name file and line; paths cannot escape.
	tmplErr := relOverlay(t, map[string]string{"common/root/etc/motd.tmpl": "line one\n{{ .Node.Hostname }}\n{{ .Node.NoSuchField }}\n"})
	build("overlay template error", good, []string{filepath.Join(tmplErr, "common/root/etc/motd.tmpl") + ":3:", "NoSuchField"}, "--overlays", tmplErr)
	tmplParse := relOverlay(t, map[string]string{"common/boot/x.txt.tmpl": "ok\n{{ if }}\n"})
	build("overlay template parse error", good, []string{filepath.Join(tmplParse, "common/boot/x.txt.tmpl") + ":2:", "missing value for if"}, "--overlays", tmplParse)
	escape := relOverlay(t, map[string]string{"common/root/%2e%2e/%2e%2e/etc/passwd": "root::0:0::/:/bin/sh\n"})
	build("overlay path escaping the root (%2e%2e)", good, []string{"passwd", "is not clean"}, "--overlays", escape)
	hostLink := relOverlay(t, map[string]string{"common/root/etc/.keep": ""})
	os.Symlink("/etc/shadow", filepath.Join(hostLink, "common/root/etc/shadow"))
	build("overlay symlink to a host file", good, []string{filepath.Join(hostLink, "common/root/etc/shadow"), "is a symlink on the host"}, "--overlays", hostLink)
	hostDirLink := relOverlay(t, map[string]string{"common/root/.keep": ""})
	os.Symlink("/etc", filepath.Join(hostDirLink, "common/root/etc"))
	build("overlay symlinked directory leaving the tree", good, []string{filepath.Join(hostDirLink, "common/root/etc"), "is a symlink on the host"}, "--overlays", hostDirLink)
	// A user overlay that does not fit the base: a file under one of the
	// base's files (/etc/hostname is a file on every base).
	underFile := relOverlay(t, map[string]string{"common/root/etc/hostname/x": "x\n"})
	build("overlay writes under a file of the base", img, []string{img, "write /etc/hostname/x on root", "not a directory"}, "--overlays", underFile)
	outside := relOverlay(t, map[string]string{"common/etc/x": "x\n"})
	build("overlay file outside boot/ and root/", good, []string{filepath.Join(outside, "common/etc/x"), "files go under boot/"}, "--overlays", outside)
	return cases
}

// TestBadSourceDateEpoch is the one case that needs its own environment.
func TestBadSourceDateEpoch(t *testing.T) {
	setEnv(t)
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	dir := t.TempDir()
	good := relDisk(t, dir, "good.img", [3]uint32{0x0c, 2048, 4096}, [3]uint32{0x83, 6144, 4096})
	o := t.TempDir()
	runReliabilityCase(t, reliabilityCase{args: []string{"build", "caspar", "--base", good, "--out-dir", o},
		code: relCodeInput, want: []string{`SOURCE_DATE_EPOCH="yesterday"`}, base: good, outDir: o})
}

// TestUsageErrors checks command-line mistakes exit 2 with one line.
func TestUsageErrors(t *testing.T) {
	setEnv(t)
	for _, tc := range []reliabilityCase{
		{name: "no node", args: []string{"build"}, want: []string{"no node given: name one or more nodes of the profiles, or --all"}},
		{name: "unknown flag", args: []string{"build", "caspar", "--nope"}, want: []string{"unknown flag: --nope"}},
		{name: "unknown command", args: []string{"frobnicate", "caspar"}, want: []string{`magibake: unknown command "frobnicate"; see`}},
		{name: "mistyped command", args: []string{"buidl", "caspar"}, want: []string{`magibake: unknown command "buidl"; did you mean build?`}},
		{name: "plan with two nodes", args: []string{"plan", "caspar", "melchior"}, want: []string{"accepts 1 arg"}},
		{name: "-o with two nodes", args: []string{"build", "caspar", "melchior", "-o", "x.img", "--base", "x"}, want: []string{"use --out-dir"}},
		{name: "-o and --out-dir", args: []string{"build", "caspar", "-o", "x.img", "--out-dir", ".", "--base", "x"}, want: []string{"not both"}},
		{name: "node twice", args: []string{"build", "caspar", "caspar", "--out-dir", t.TempDir(), "--base", "x"}, want: []string{"node caspar given twice"}},
		{name: "no --base", args: []string{"build", "caspar", "--out-dir", t.TempDir()}, want: []string{"no --base given: give the Raspberry Pi OS Lite image with --base FILE (`magibake fetch --latest`"}},
	} {
		tc.code = relCodeUsage
		t.Run(tc.name, func(t *testing.T) { runReliabilityCase(t, tc) })
	}
}

func relNames(es []os.DirEntry) []string {
	var n []string
	for _, e := range es {
		n = append(n, e.Name())
	}
	return n
}

func relRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func relWrite(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func relMkdir(t *testing.T, p string) string {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func relRandom(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(n))).Read(b)
	return b
}

// smallDisk is disk() with a random megabyte inside partition 1, so that its
// .img.xz has a real compressed block.
func relDisk(t *testing.T, dir, name string, parts ...[3]uint32) string {
	t.Helper()
	p := disk(t, dir, name, parts...)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(relRandom(1<<20), 2048*512); err != nil {
		t.Fatal(err)
	}
	return p
}

func relXZ(t *testing.T, dir, img string) []byte {
	t.Helper()
	testkit.RequireTools(t, "xz")
	out := filepath.Join(dir, "xz-"+filepath.Base(img)+".xz")
	cmd := exec.Command("sh", "-c", `xz -0 --check=crc64 -c "$1" > "$2"`, "sh", img, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, b)
	}
	return relRead(t, out)
}

// flipCheck returns xz data whose first block's CRC64 check value (as xz
// --list reports it) has one bit flipped: the data decodes, the check fails.
func relFlipCheck(t *testing.T, dir string, data []byte) []byte {
	t.Helper()
	p := relWrite(t, dir, "for-list.xz", data)
	for _, b := range testkit.XZBlocks(t, p) {
		if b.CheckType != "CRC64" {
			continue
		}
		check, err := hex.DecodeString(b.Check)
		if err != nil || len(check) != 8 {
			t.Fatalf("check value %q", b.Check)
		}
		at := b.Offset + b.Size - 8
		slices.Reverse(check) // xz --list prints the CRC64 as a number, the file stores it little-endian
		if !bytes.Equal(data[at:at+8], check) {
			t.Fatalf("block check not at %d: %x, xz says %x", at, data[at:at+8], check)
		}
		bad := bytes.Clone(data)
		bad[at] ^= 1
		return bad
	}
	t.Fatalf("no CRC64 block in %s", p)
	return nil
}

// profilesDir copies the embedded example profiles into dir/name, with
// cluster.yaml passed through change when given.
func relProfiles(t *testing.T, dir, name string, change func(string) string) string {
	t.Helper()
	pd := relMkdir(t, filepath.Join(dir, name))
	root := fixture.RepoRoot(t)
	for _, f := range []string{"cluster.yaml", "caspar.yaml", "balthasar.yaml", "melchior.yaml"} {
		b := relRead(t, filepath.Join(root, "profiles", f))
		if f == "cluster.yaml" && change != nil {
			b = []byte(change(string(b)))
		}
		relWrite(t, pd, f, b)
	}
	return pd
}

func relEdit(t *testing.T, p, old, new string) {
	t.Helper()
	b := relRead(t, p)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s does not contain %q", p, old)
	}
	relWrite(t, filepath.Dir(p), filepath.Base(p), bytes.Replace(b, []byte(old), []byte(new), 1))
}

func relOverlay(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	for name, content := range files {
		relWrite(t, d, name, []byte(content))
	}
	return d
}

// fixtureCopy makes a sparse private copy of a fixture image to change.
func relFixtureCopy(t *testing.T, img, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "--sparse=always", img, p).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	return p
}

func relDebugfs(t *testing.T, img, req string) {
	t.Helper()
	testkit.RequireTools(t, "debugfs")
	spec := fixture.OpenCard(t, img).RootSpec()
	if out, err := exec.Command("debugfs", "-w", "-R", req, spec).CombinedOutput(); err != nil {
		t.Fatalf("debugfs -w -R %q: %v %s", req, err, out)
	}
}

// fillRoot allocates every free block of the root filesystem but keep.
func relFillRoot(t *testing.T, img string, keep int) {
	t.Helper()
	testkit.RequireTools(t, "dumpe2fs")
	spec := fixture.OpenCard(t, img).RootSpec()
	out, err := exec.Command("dumpe2fs", "-h", spec).Output()
	if err != nil {
		t.Fatalf("dumpe2fs: %v", err)
	}
	m := regexp.MustCompile(`(?m)^Free blocks:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("dumpe2fs: no free block count:\n%s", out)
	}
	free, _ := strconv.Atoi(string(m[1]))
	relDebugfs(t, img, "write /dev/null /filler")
	relDebugfs(t, img, fmt.Sprintf("fallocate /filler 0 %d", free-keep-1))
}

// relFillBoot leaves only about keep bytes free on the image's FAT boot
// partition, with one file of zeros.
func relFillBoot(t *testing.T, img string, keep int64) {
	t.Helper()
	testkit.RequireTools(t, "mdir", "mcopy")
	spec := fixture.OpenCard(t, img).BootSpec()
	out, err := exec.Command("mdir", "-i", spec, "::/").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v %s", err, out)
	}
	m := regexp.MustCompile(`([\d ]+) bytes free`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("mdir: no free byte count:\n%s", out)
	}
	free, _ := strconv.ParseInt(strings.ReplaceAll(string(m[1]), " ", ""), 10, 64)
	filler := filepath.Join(t.TempDir(), "filler")
	if err := os.Truncate(relWrite(t, filepath.Dir(filler), "filler", nil), free-keep); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mcopy", "-i", spec, filler, "::/filler").CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v %s", err, out)
	}
}

// readOnlyDir returns an empty directory no one may create files in: for
// root, whom permissions do not stop, a read-only tmpfs.
func relReadOnlyDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() == 0 {
		return relTmpfs(t, syscall.MS_RDONLY, "size=1m")
	}
	d := t.TempDir()
	if err := os.Chmod(d, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(d, 0o755) })
	return d
}

// tmpfs mounts a tmpfs with the given options on a new directory. It needs
// root (CI runs as root) and fails loudly, never skips, without it.
func relTmpfs(t *testing.T, flags uintptr, opts string) string {
	t.Helper()
	d := t.TempDir()
	if err := syscall.Mount("tmpfs", d, "tmpfs", flags, opts); err != nil {
		t.Fatalf("mount -t tmpfs -o %s on %s: %v (this test needs root: run `make test` as root or with sudo)", opts, d, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(d, 0); err != nil {
			t.Errorf("umount %s: %v", d, err)
		}
	})
	return d
}

// errLine is how an error line starts.
var errLine = regexp.MustCompile(`^magibake( [a-z-]+)*: `)

// TestOnePrefix: an error that names its command is printed with the
// program's name once ("magibake build: ..."), never "magibake: magibake".
func TestOnePrefix(t *testing.T) {
	setEnv(t)
	for _, args := range [][]string{{"build"}, {"validate", "--base", "x"}, {"plan"}, {"build", "caspar", "--nope"}} {
		code, _, stderr := execute(t, args...)
		if code != relCodeUsage || strings.Count(stderr, "magibake") != 1 || !strings.HasPrefix(stderr, "magibake "+args[0]+": ") {
			t.Errorf("magibake %s: exit %d, stderr %q; want 2 and one line starting \"magibake %s: \"", strings.Join(args, " "), code, stderr, args[0])
		}
	}
}
