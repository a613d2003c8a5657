// Package compare holds the one comparison of what a card holds at a path
// with what the plan's final operation on that path asks for; bake's
// verification and inspect's diff both word its findings, each their own way.
package compare

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/fatread"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/redact"
)

// Result is what differs between one path of the card and its operation.
// Every difference is found, not only the first: verification and diff
// report them in different orders.
type Result struct {
	// Missing is a path the operation makes and the card lacks; on FAT, which
	// has no other types to tell apart, also a directory where a file should
	// be or the reverse.
	Missing bool
	// Lookup is ext4's own error for a Missing path, which says which lookup
	// failed.
	Lookup error
	// Present is a path the operation removes and the card still has.
	Present bool
	// Type is, on ext4, a path that holds another type than the operation
	// makes (a directory where a file should be, a file for a symlink).
	Type    bool
	Content bool // a file's bytes, or an edited line's, differ from Planned
	Target  bool // a symlink points elsewhere
	Mode    bool // ext4 permission bits, of files and directories
	Owner   bool // ext4 uid or gid
	// Stat is the card's ext4 entry, when there is one: the values the
	// differences above are worded with.
	Stat ext4.Stat
	// Current is the card's content of a file or cmdline.txt that is there
	// and of the right type; Planned what the operation wants there, for an
	// edit the card's own line edited again (an edit keeps what it does not
	// name).
	Current, Planned []byte
	// NotOneLine, Unset and Kept check an edited cmdline.txt by the words the
	// edit names rather than by the whole line (Content): it is not one line,
	// lacks words the edit sets, or has words of keys the edit removes, in
	// the order of the edit.
	NotOneLine bool
	Unset      []string
	Kept       []string
	// Unapplied are the lines of a config.txt edit whose effect the card's
	// config.txt lacks (plan.ConfigMissing).
	Unapplied []plan.ConfigLine

	read, planned bool // Current, Planned are known (either may be empty)
}

// CurrentSHA256 is the sha256 of Current, or "" when there is none: hashed
// only on demand, as verification does not need it and diff must not hash
// secrets.
func (r Result) CurrentSHA256() string {
	if !r.read {
		return ""
	}
	return sum(r.Current)
}

// PlannedSHA256 is the sha256 of Planned, or "" when there is none.
func (r Result) PlannedSHA256() string {
	if !r.planned {
		return ""
	}
	return sum(r.Planned)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Op compares op, the last operation of a plan on its path, with the card
// whose root and boot file systems are given. An error is a path that could
// not be read, or an operation the partition cannot hold.
func Op(root *ext4.FS, boot *fat32.FileSystem, op plan.Op) (Result, error) {
	if op.Partition == plan.Root {
		return ext4Op(root, op)
	}
	return fatOp(boot, op)
}

const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func ext4Op(fsys *ext4.FS, op plan.Op) (Result, error) {
	var r Result
	st, err := fsys.Lstat(op.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	exists := err == nil
	if op.Kind == plan.WriteFile {
		r.Planned, r.planned = op.Content, true
	}
	switch op.Kind {
	case plan.Remove:
		r.Present = exists
		return r, nil
	case plan.WriteFile, plan.Mkdir, plan.Symlink:
	default:
		return Result{}, fmt.Errorf("operation %s is not supported on the root partition", op.Kind)
	}
	if !exists {
		r.Missing, r.Lookup = true, err
		return r, nil
	}
	r.Stat = st
	r.Owner = st.UID != op.UID || st.GID != op.GID
	switch op.Kind {
	case plan.WriteFile:
		r.Type = !st.Mode.IsRegular()
		r.Mode = st.Mode&permBits != op.Mode&permBits
		if r.Type {
			return r, nil
		}
		if r.Current, err = fsys.ReadFile(op.Path); err != nil {
			return Result{}, err
		}
		r.read = true
		r.Content = !bytes.Equal(r.Current, op.Content)
	case plan.Mkdir:
		r.Type = !st.Mode.IsDir()
		r.Mode = st.Mode&permBits != op.Mode&permBits
	case plan.Symlink:
		// A link's own mode means nothing on Linux: not compared.
		r.Type = st.Mode&fs.ModeSymlink == 0
		r.Target = st.Target != op.Target
	}
	return r, nil
}

func fatOp(fsys *fat32.FileSystem, op plan.Op) (Result, error) {
	var r Result
	fi, exists := fatread.Exists(fsys, op.Path)
	switch op.Kind {
	case plan.Remove:
		r.Present = exists
		return r, nil
	case plan.Mkdir:
		r.Missing = !exists || !fi.IsDir()
		return r, nil
	case plan.WriteFile, plan.EditCmdline, plan.EditConfig:
	default:
		return Result{}, fmt.Errorf("operation %s is not supported on the boot partition", op.Kind)
	}
	if op.Kind == plan.WriteFile {
		r.Planned, r.planned = op.Content, true
	}
	if op.Kind == plan.EditConfig && !exists {
		// The edit makes a config.txt where the base has none.
		r.Planned, r.planned = []byte(plan.ApplyConfig("", op.ConfigLines)), true
		r.Unapplied = op.ConfigLines
	}
	if !exists || fi.IsDir() {
		r.Missing = true
		return r, nil
	}
	if fi.Size() > 0 {
		// go-diskfs cannot open an empty file that has no cluster (the
		// correct form): "invalid start cluster: 0".
		var err error
		if r.Current, err = fatread.ReadFile(fsys, op.Path); err != nil {
			return Result{}, err
		}
	}
	r.read = true
	if op.Kind == plan.EditCmdline {
		line := string(r.Current)
		r.Planned, r.planned = []byte(plan.ApplyCmdline(line, op.CmdlineSet, op.CmdlineRemove)), true
		r.NotOneLine, r.Unset, r.Kept = Cmdline(line, op)
	}
	if op.Kind == plan.EditConfig {
		text := string(r.Current)
		r.Planned, r.planned = []byte(plan.ApplyConfig(text, op.ConfigLines)), true
		r.Unapplied = plan.ConfigMissing(text, op.ConfigLines)
	}
	r.Content = !bytes.Equal(r.Current, r.Planned)
	return r, nil
}

// Cmdline checks a cmdline.txt's text against an edit by the words the edit
// names: whether it is not one line, the words it sets that the text lacks,
// and the text's words of keys it removes, in the order of the edit. A live
// node's cmdline.txt (magibake check) is judged the same way as a card's.
func Cmdline(text string, op plan.Op) (notOneLine bool, unset, kept []string) {
	notOneLine = strings.Count(text, "\n") != 1 || !strings.HasSuffix(text, "\n")
	words := strings.Fields(text)
	for _, w := range op.CmdlineSet {
		if !slices.Contains(words, w) {
			unset = append(unset, w)
		}
	}
	for _, rm := range op.CmdlineRemove {
		for _, w := range words {
			// A removed key may come back as a word the edit sets.
			if (w == rm || strings.HasPrefix(w, rm+"=")) && !slices.Contains(op.CmdlineSet, w) {
				kept = append(kept, w)
			}
		}
	}
	return notOneLine, unset, kept
}

// Reveal is a value of op (a link target, a command-line word, a content
// hash) as diff and check show it: nothing of a secret operation, and any
// of the plan's secret values masked wherever else it appears. Both use
// it, so neither shows what the other masks.
func Reveal(op plan.Op, secrets *redact.Secrets, v string) string {
	if op.Secret {
		return redact.Mask
	}
	return secrets.String(v)
}

// TargetDiffers words a symlink that points to got instead of op's target,
// for diff and check alike (see Reveal).
func TargetDiffers(op plan.Op, secrets *redact.Secrets, got string) string {
	if op.Secret {
		return "secret link target differs"
	}
	return fmt.Sprintf("points to %q, plan %q", Reveal(op, secrets, got), Reveal(op, secrets, op.Target))
}
