package apply

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/magibake/magibake/internal/plan"
)

// StateDir is where apply keeps, per run, what it replaced and the script
// that puts it back.
const StateDir = "/var/lib/magibake/apply"

// Exit codes of Script, besides 0 (applied).
const (
	// ExitRefused: a check refused a staged file; nothing was replaced.
	ExitRefused = 3
	// ExitRolledBack: a step after the files were replaced failed; the
	// previous files are back and what had been restarted was restarted.
	ExitRolledBack = 4
)

// Script returns the root script that makes the written changes (Now and
// Reboot) on the node, then writes manifest (the node's new manifest) at
// manifest.Path. In order: every file is staged beside its place and
// checked there (nothing replaced yet); each replaced version is kept
// under StateDir/stamp/old and each file renamed into place after an
// fsync; then the commands that take the changes up run, each once. A
// failing command puts every path back as it was, runs the same commands
// again for the old files, and exits ExitRolledBack. StateDir/stamp/undo
// is that way back, for the owner too. Lines starting "@@magibake-apply "
// report each step.
func Script(changes []Change, manifestPath string, manifest []byte, stamp string) string {
	var b strings.Builder
	dir := StateDir + "/" + stamp
	fmt.Fprintf(&b, `export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
set -u
# A dropped connection must not stop the script half way: it goes on to
# its end or its rollback, and its report stays in $S/log.
trap '' HUP PIPE INT TERM
S=%s
say() { printf '@@magibake-apply %%s\n' "$*" >>"$S/log"; printf '@@magibake-apply %%s\n' "$*" 2>/dev/null; }
mkdir -p %s && mkdir -m 700 "$S" && mkdir "$S/old" && : >"$S/paths" && : >"$S/made" ||
	{ printf '@@magibake-apply refused cannot make %%s (another apply at the same second?)\n' "$S"; exit %d; }
`, shq(dir), shq(StateDir), ExitRefused)
	b.WriteString(helpers)
	var written []Change
	for _, c := range changes {
		if c.Effect != Reflash {
			written = append(written, c)
		}
	}
	written = append(written, Change{Op: plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: manifestPath, Mode: 0o644}, Path: manifestPath, Content: manifest})
	// Stage: every new version beside its place, checked, nothing replaced.
	for _, c := range written {
		boot := c.Op.Partition == plan.Boot
		switch c.Op.Kind {
		case plan.WriteFile, plan.EditConfig:
			mode, owner := "", ""
			if !boot { // FAT has the mount's modes and owners
				mode, owner = plan.OctalMode(c.Op.Mode), fmt.Sprintf("%d:%d", c.Op.UID, c.Op.GID)
			}
			fmt.Fprintf(&b, "stage_file %s %s %s <<'@@magibake-content'\n%s\n@@magibake-content\n",
				shq(c.Path), shq(mode), shq(owner), wrap(base64.StdEncoding.EncodeToString(c.Content)))
		case plan.Symlink:
			fmt.Fprintf(&b, "stage_link %s %s\n", shq(c.Path), shq(c.Op.Target))
		case plan.Mkdir:
			fmt.Fprintf(&b, "stage_dir %s %s %s\n", shq(c.Path), shq(plan.OctalMode(c.Op.Mode)), shq(fmt.Sprintf("%d:%d", c.Op.UID, c.Op.GID)))
		case plan.Remove:
			fmt.Fprintf(&b, "stage_remove %s\n", shq(c.Path))
		}
		if c.check != "" {
			fmt.Fprintf(&b, "check_staged %s %s\n", shq(c.Path), shq(c.check))
		}
	}
	var then []string
	for _, c := range written {
		for _, t := range c.then {
			if !slices.Contains(then, t) {
				then = append(then, t)
			}
		}
	}
	// daemon-reload first: the restarts after it must see the new units.
	slices.SortStableFunc(then, func(x, y string) int {
		return boolInt(y == "systemctl daemon-reload") - boolInt(x == "systemctl daemon-reload")
	})
	b.WriteString("cat >\"$S/then\" <<'@@magibake-then'\n")
	for _, t := range then {
		b.WriteString(t + "\n")
	}
	b.WriteString("@@magibake-then\n")
	// Replace, then take the changes up.
	b.WriteString("commit\ntake_up\n")
	b.WriteString("say finished\n")
	return b.String()
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// wrap breaks base64 text into lines, as base64 -d reads them.
func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// helpers are the script's shell functions. A staged path is DIR/.NAME.magibake-new
// (hidden: NetworkManager and the like skip it);
// $S/paths lists "KIND PATH" for every staged path, in order; $S/undo
// lists "saved PATH" or "absent PATH" for every replaced one.
const helpers = `new() { printf '%s/.%s.magibake-new' "$(dirname "$1")" "$(basename "$1")"; }
unstage() {
	while read -r k p; do rm -rf "$(new "$p")"; done <"$S/paths"
	tac "$S/made" | while IFS= read -r d; do rm -rf "$d"; done
}
refuse() { say "refused $*"; unstage; exit 3; }
parent() { # path: make its missing parents, noting the topmost made
	d=$(dirname "$1"); top=
	while [ ! -e "$d" ]; do top=$d; d=$(dirname "$d"); done
	[ -z "$top" ] || echo "$top" >>"$S/made"
	mkdir -p "$(dirname "$1")"
}
stage_file() { # path mode owner, base64 content on stdin
	echo "file $1" >>"$S/paths"
	parent "$1" && (umask 077 && base64 -d >"$(new "$1")") || refuse "$1: cannot write it"
	if [ -n "$2" ]; then chmod "$2" "$(new "$1")" && chown "$3" "$(new "$1")" || refuse "$1: cannot set its mode and owner"; fi
	sync "$(new "$1")" || refuse "$1: fsync failed"
}
stage_link() { # path target
	echo "link $1" >>"$S/paths"
	parent "$1" && rm -rf "$(new "$1")" && ln -s "$2" "$(new "$1")" || refuse "$1: cannot make the link"
}
stage_dir() { echo "dir $1 $2 $3" >>"$S/paths"; }  # path mode owner
stage_remove() { echo "remove $1" >>"$S/paths"; }
check_staged() { # path command ("$1" the staged file)
	out=$(sh -c "$2" check "$(new "$1")" 2>&1) || refuse "$1: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"
}
save() { # path: keep what is there, once
	grep -qxF "saved $1" "$S/undo" 2>/dev/null && return 0
	grep -qxF "absent $1" "$S/undo" 2>/dev/null && return 0
	if grep -qxF "$1" "$S/made"; then
		echo "absent $1" >>"$S/undo" # made by staging: not the node's
	elif [ -e "$1" ] || [ -L "$1" ]; then
		mkdir -p "$S/old$(dirname "$1")" && cp -a "$1" "$S/old$1" || return 1
		echo "saved $1" >>"$S/undo"
	else
		echo "absent $1" >>"$S/undo"
	fi
}
commit() {
	: >"$S/undo" || { say "failed cannot write $S/undo"; unstage; exit 3; }
	cat >"$S/undo.sh" <<'@@magibake-undo'
# Puts back what magibake apply replaced, newest first, then takes the
# old files up as apply took the new ones up.
S=$(dirname "$0")
tac "$S/undo" | while read -r k p; do
	case "$k" in
	saved) rm -rf "$p.magibake-old" && cp -a "$S/old$p" "$p.magibake-old" && mv -Tf "$p.magibake-old" "$p" || echo "@@magibake-apply failed to put back $p" ;;
	absent) rm -rf "$p" ;;
	esac
done
tac "$S/made" | while IFS= read -r d; do rm -rf "$d"; done
sync
while IFS= read -r cmd; do sh -c "$cmd" || echo "@@magibake-apply failed again $cmd"; done <"$S/then"
@@magibake-undo
	[ -s "$S/undo.sh" ] || { say "failed cannot write $S/undo.sh"; unstage; exit 3; }
	while read -r k p rest; do
		save "$p" || { say "failed $p: cannot keep its version"; rollback; }
		case "$k" in
		file | link) mv -Tf "$(new "$p")" "$p" ;;
		dir) mkdir -p "$p" && chmod "${rest% *}" "$p" && chown "${rest#* }" "$p" ;;
		remove) rm -rf "$p" ;;
		esac || { say "failed $p: cannot put it in place"; rollback; }
		sync "$(dirname "$p")" 2>/dev/null || sync
		say "wrote $p"
	done <"$S/paths"
}
rollback() {
	unstage
	sh "$S/undo.sh" | sed 's/^/  /'
	say "rolled back"
	exit 4
}
take_up() {
	while IFS= read -r cmd; do
		out=$(sh -c "$cmd" 2>&1 </dev/null) || { say "failed $cmd: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')"; rollback; }
		say "ran $cmd"
	done <"$S/then"
}
`
