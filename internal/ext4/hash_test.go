package ext4

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/testkit"
)

// TestDirHashMatchesDebugfs checks every hash version against e2fsprogs'
// own implementation, including bytes >= 0x80 where signedness matters and
// names longer than one hash block.
func TestDirHashMatchesDebugfs(t *testing.T) {
	testkit.RequireTools(t, "debugfs", "mkfs.ext4")
	tree, _ := makeTree(t, 1)
	img := mkfs(t, tree, 16)
	const seedStr = "a6619786-b1be-474f-9cae-2368f782eeb1"
	raw, _ := hex.DecodeString(strings.ReplaceAll(seedStr, "-", ""))
	var seed [4]uint32
	for i := range seed {
		seed[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	names := []string{"a", "hostname", "systemd", "caf\xc3\xa9-\xff\xfe", strings.Repeat("long-name-", 20),
		"exactly-thirty-two-bytes-long-xx", "sixteen-bytes-xx"}
	algs := []struct {
		name     string
		version  int
		unsigned bool
	}{
		{"legacy", hashLegacy, false}, {"half_md4", hashHalfMD4, false}, {"tea", hashTEA, false},
		{"legacy", hashLegacyUnsigned, true}, {"half_md4", hashHalfMD4Unsigned, true},
		{"tea", hashTEAUnsigned, true},
	}
	// debugfs picks the signed or unsigned variant from the superblock flags.
	unsignedImg := t.TempDir() + "/unsigned.img"
	writeFile(t, unsignedImg, "")
	testkit.Run(t, "cp", img, unsignedImg)
	testkit.Run(t, "debugfs", "-w", "-R", "ssv flags 2", unsignedImg)
	re := regexp.MustCompile(`is 0x([0-9a-f]+)`)
	for _, a := range algs {
		var cmds []string
		for _, n := range names {
			if a.unsigned && !isASCII(n) {
				// debugfs' dx_hash ignores the unsigned flag, so it cannot
				// judge these; TestHtreeGrowth's unsigned case has e2fsck
				// check them inside a real directory instead.
				continue
			}
			cmds = append(cmds, fmt.Sprintf("dx_hash -h %s -s %s %s", a.name, seedStr, n))
		}
		script := t.TempDir() + "/cmds"
		writeFile(t, script, strings.Join(cmds, "\n")+"\n")
		target := img
		if a.unsigned {
			target = unsignedImg
		}
		got := re.FindAllStringSubmatch(testkit.Run(t, "debugfs", "-f", script, target), -1)
		if len(got) != len(cmds) {
			t.Fatalf("debugfs answered %d of %d hashes", len(got), len(cmds))
		}
		k := 0
		for _, n := range names {
			if a.unsigned && !isASCII(n) {
				continue
			}
			want, _ := strconv.ParseUint(got[k][1], 16, 32)
			k++
			h, err := dirHash(a.version, []byte(n), seed)
			if err != nil {
				t.Fatal(err)
			}
			if h != uint32(want) {
				t.Errorf("version %d (%s, unsigned %v) of %q = %#x, debugfs says %#x", a.version, a.name, a.unsigned, n, h, want)
			}
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
