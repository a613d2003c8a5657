package compare_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"testing"

	"github.com/magibake/magibake/internal/bake"
	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/inspect"
	"github.com/magibake/magibake/internal/plan"
)

// TestCompare compares single operations with the untouched bookworm
// fixture and checks how both users of the comparison word each finding:
// bake's verification (the first difference, or none) and inspect's diff
// (one Change). The two differ in order and in what a cmdline edit must
// leave, and diff never shows a secret's hash.
func TestCompare(t *testing.T) {
	img, _ := fixture.Image(t, "bookworm")
	base, layout := fixture.OpenBase(t, img)
	im, err := inspect.Open(context.Background(), img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()

	const (
		hostname = "raspberrypi\n"
		cmdline  = "console=serial0,115200 console=tty1 root=PARTUUID=6c1e5a3b-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
	)
	file := func(path, content string, mode fs.FileMode, uid uint32) plan.Op {
		return plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: path, Content: []byte(content), Mode: mode, UID: uid}
	}
	boot := func(kind plan.Kind, path, content string) plan.Op {
		return plan.Op{Partition: plan.Boot, Kind: kind, Path: path, Content: []byte(content), Mode: 0o644}
	}
	edit := func(set, remove []string) plan.Op {
		return plan.Op{Partition: plan.Boot, Kind: plan.EditCmdline, Path: "/cmdline.txt", CmdlineSet: set, CmdlineRemove: remove}
	}
	secret := func(op plan.Op) plan.Op { op.Secret = true; return op }
	edited := func(set, remove []string) string { return plan.ApplyCmdline(cmdline, set, remove) }

	for _, tc := range []struct {
		name   string
		op     plan.Op
		verify string // the error after "verify PATH on PART: ", or "" for none
		status inspect.Status
		detail string
		// The sha256 diff shows of these, or "-" for none.
		current, planned string
	}{
		{"file the same", file("/etc/hostname", hostname, 0o644, 0), "", inspect.Same, "", hostname, hostname},
		{"file content", file("/etc/hostname", "caspar\n", 0o644, 0),
			"content differs from what was written (12 bytes, want 7)", inspect.Changed, "content differs", hostname, "caspar\n"},
		{"file mode", file("/etc/hostname", hostname, 0o600, 0),
			"mode -rw-r--r--, want regular file -rw-------", inspect.Changed, "mode 0644, plan 0600", hostname, hostname},
		{"file setuid", file("/etc/hostname", hostname, 0o644|fs.ModeSetuid, 0),
			"mode -rw-r--r--, want regular file urw-r--r--", inspect.Changed, "mode 0644, plan 4644", hostname, hostname},
		{"file owner", file("/etc/hostname", hostname, 0o644, 1000),
			"owner 0:0, want 1000:0", inspect.Changed, "owner 0:0, plan 1000:0", hostname, hostname},
		// Verification puts the owner first, diff the content.
		{"file owner and content", file("/etc/hostname", "caspar\n", 0o644, 1000),
			"owner 0:0, want 1000:0", inspect.Changed, "content differs", hostname, "caspar\n"},
		{"file where a directory is", file("/etc/ssh", hostname, 0o644, 0),
			"mode drwxr-xr-x, want regular file -rw-r--r--", inspect.Changed, "is d---------, plan writes a file", "-", hostname},
		{"file missing", file("/etc/nope", hostname, 0o644, 0),
			"lstat /etc/nope: file does not exist", inspect.Add, "", "-", hostname},
		{"secret file content", secret(file("/etc/hostname", "caspar\n", 0o644, 0)),
			"content differs from what was written (12 bytes, want 7)", inspect.Changed, "content differs", "-", "-"},
		{"directory the same", plan.Op{Partition: plan.Root, Kind: plan.Mkdir, Path: "/root", Mode: 0o700}, "", inspect.Same, "", "-", "-"},
		{"directory mode", plan.Op{Partition: plan.Root, Kind: plan.Mkdir, Path: "/tmp", Mode: 0o755},
			"mode dtrwxrwxrwx, want directory -rwxr-xr-x", inspect.Changed, "mode 1777, plan 0755", "-", "-"},
		{"directory where a file is", plan.Op{Partition: plan.Root, Kind: plan.Mkdir, Path: "/etc/hostname", Mode: 0o644},
			"mode -rw-r--r--, want directory -rw-r--r--", inspect.Changed, "content differs", "-", "-"},
		{"directory missing", plan.Op{Partition: plan.Root, Kind: plan.Mkdir, Path: "/etc/nope", Mode: 0o755},
			"lstat /etc/nope: file does not exist", inspect.Add, "", "-", "-"},
		{"symlink the same", plan.Op{Partition: plan.Root, Kind: plan.Symlink, Path: "/bin", Target: "usr/bin", Mode: 0o777}, "", inspect.Same, "", "-", "-"},
		{"symlink target", plan.Op{Partition: plan.Root, Kind: plan.Symlink, Path: "/bin", Target: "/usr/bin", Mode: 0o777},
			`symlink to "usr/bin" (mode Lrwxrwxrwx), want symlink to "/usr/bin"`, inspect.Changed, `points to "usr/bin", plan "/usr/bin"`, "-", "-"},
		{"secret symlink owner", secret(plan.Op{Partition: plan.Root, Kind: plan.Symlink, Path: "/bin", Target: "usr/bin", Mode: 0o777, UID: 1}),
			"owner 0:0, want 1:0", inspect.Changed, "owner 0:0, plan 1:0", "-", "-"},
		{"secret symlink target", secret(plan.Op{Partition: plan.Root, Kind: plan.Symlink, Path: "/bin", Target: "/run/the-passphrase", Mode: 0o777}),
			`symlink to "usr/bin" (mode Lrwxrwxrwx), want symlink to "/run/the-passphrase"`, inspect.Changed, "secret link target differs", "-", "-"},
		{"symlink where a directory is", plan.Op{Partition: plan.Root, Kind: plan.Symlink, Path: "/etc/ssh", Target: "/x", Mode: 0o777},
			`symlink to "" (mode drwxr-xr-x), want symlink to "/x"`, inspect.Changed, `points to "", plan "/x"`, "-", "-"},
		{"removal of a file there", plan.Op{Partition: plan.Root, Kind: plan.Remove, Path: "/etc/hostname"},
			"still present after removal", inspect.Delete, "", "-", "-"},
		{"removal of a file not there", plan.Op{Partition: plan.Root, Kind: plan.Remove, Path: "/etc/nope"}, "", inspect.Same, "", "-", "-"},

		{"boot file the same", boot(plan.WriteFile, "/cmdline.txt", cmdline), "", inspect.Same, "", cmdline, cmdline},
		{"boot file content", boot(plan.WriteFile, "/cmdline.txt", "x\n"),
			fmt.Sprintf("content differs from what was written (%d bytes, want 2)", len(cmdline)), inspect.Changed, "content differs", cmdline, "x\n"},
		{"boot file not empty", boot(plan.WriteFile, "/cmdline.txt", ""),
			fmt.Sprintf("%d bytes, want an empty file", len(cmdline)), inspect.Changed, "content differs", cmdline, ""},
		{"boot file missing", boot(plan.WriteFile, "/nope.txt", "x\n"), "file missing", inspect.Add, "", "-", "x\n"},
		{"boot file where a directory is", boot(plan.WriteFile, "/overlays", "x\n"), "file missing", inspect.Add, "", "-", "x\n"},
		{"boot directory the same", boot(plan.Mkdir, "/overlays", ""), "", inspect.Same, "", "-", "-"},
		{"boot directory where a file is", boot(plan.Mkdir, "/cmdline.txt", ""), "directory missing", inspect.Add, "", "-", "-"},
		{"boot removal", boot(plan.Remove, "/CMDLINE.TXT", ""), "still present after removal", inspect.Delete, "", "-", "-"},
		{"boot removal not there", boot(plan.Remove, "/nope.txt", ""), "", inspect.Same, "", "-", "-"},
		{"cmdline the same", edit([]string{"quiet"}, []string{"splash"}), "", inspect.Same, "", cmdline, cmdline},
		{"cmdline word to set", edit([]string{"magibake=1"}, nil),
			`missing "magibake=1"`, inspect.Changed, "content differs", cmdline, edited([]string{"magibake=1"}, nil)},
		{"cmdline word to remove", edit(nil, []string{"quiet"}),
			`still has "quiet"`, inspect.Changed, "content differs", cmdline, edited(nil, []string{"quiet"})},
		// Verification asks for the words the edit names; diff for the line
		// the edit would leave, which has one console= word.
		{"cmdline key twice", edit([]string{"console=tty1"}, nil),
			"", inspect.Changed, "content differs", cmdline, edited([]string{"console=tty1"}, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &plan.Plan{Node: "test", Ops: []plan.Op{tc.op}}
			err := bake.Verify(image.NewDevice(base, base.Size()), layout, p)
			want := ""
			if tc.verify != "" {
				want = fmt.Sprintf("verify %s on %s: %s", tc.op.Path, tc.op.Partition, tc.verify)
			}
			if got := errText(err); got != want {
				t.Errorf("verify: %q, want %q", got, want)
			}
			changes, err := im.Diff(p)
			if err != nil {
				t.Fatal(err)
			}
			wantC := inspect.Change{Status: tc.status, Partition: tc.op.Partition.String(), Kind: string(tc.op.Kind),
				Path: tc.op.Path, Detail: tc.detail, Current: sum(tc.current), Planned: sum(tc.planned)}
			if len(changes) != 1 || changes[0] != wantC {
				t.Errorf("diff: %+v\nwant    %+v", changes, wantC)
			}
		})
	}

	// Operations a partition cannot hold, and an edit of a file the card
	// lacks, are errors to diff, not findings.
	for _, tc := range []struct {
		op   plan.Op
		want string
	}{
		{plan.Op{Partition: plan.Root, Kind: plan.EditCmdline, Path: "/etc/hostname"}, "operation cmdline is not supported on the root partition"},
		{plan.Op{Partition: plan.Boot, Kind: plan.Symlink, Path: "/l", Target: "x"}, "operation symlink is not supported on the boot partition"},
		{plan.Op{Partition: plan.Boot, Kind: plan.EditCmdline, Path: "/nope.txt"}, "the image has no cmdline.txt to edit"},
	} {
		_, err := im.Diff(&plan.Plan{Ops: []plan.Op{tc.op}})
		want := fmt.Sprintf("%s: %s on %s: %s", img, tc.op.Path, tc.op.Partition, tc.want)
		if errText(err) != want {
			t.Errorf("diff: %v, want %q", err, want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func sum(s string) string {
	if s == "-" {
		return ""
	}
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
