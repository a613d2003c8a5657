// Package check holds magibake check's checks of a live node against its
// profile and plan: the read-only shell script that gathers the node's state
// in one SSH session, and the verdicts on what it printed. The cli runs it
// on the owner's nodes; the emulated cluster test runs the same command.
package check

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"

	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
)

// Target is one node to check and what it should be.
type Target struct {
	Cluster *profile.Cluster
	Node    *profile.Node
	// Plan is today's plan for the node (what `magibake plan` shows): the
	// baked files are judged against it, secrets included, without printing
	// them.
	Plan *plan.Plan
	// HostKey is the node's baked public host key, "ssh-ed25519 AAAA...".
	HostKey string
	// Upstream is an address beyond the head's uplink that a worker must
	// reach through the head (NAT).
	Upstream netip.Addr
}

// BootMount is where Raspberry Pi OS mounts the boot partition.
const BootMount = "/boot/firmware"

// marker starts every section of the script's output; Begin is printed
// first, so output without it never ran (sudo refused, no shell).
const (
	marker = "@@magibake-check "
	begin  = marker + "begin"
)

// Script returns the shell script that prints the node's state, section by
// section. It only reads, and runs as root: the NAT rules and the secret
// files are readable by root alone.
func Script(t Target) string {
	c := t.Cluster
	var b strings.Builder
	b.WriteString("export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
	fmt.Fprintf(&b, "echo '%s'\n", begin)
	fmt.Fprintf(&b, "s() { printf '\\n%s%%s\\n' \"$1\"; }\n", marker)
	b.WriteString(fileFunc)
	sec := func(name, cmd string) { fmt.Fprintf(&b, "s %s; %s\n", name, cmd) }
	sec("hostname", "hostname")
	sec("manifest", "cat /etc/magibake/manifest.json")
	sec("hostkey", "cat /etc/ssh/ssh_host_ed25519_key.pub")
	sec("system", "systemctl is-system-running")
	sec("failed", "systemctl --failed --plain --no-legend")
	sec("eth0", "ip -4 -o addr show dev eth0")
	sec("uplink", "ip -4 -o addr show dev "+shq(c.Uplink))
	sec("routes", "ip -4 route show")
	sec("cmdline", "cat "+BootMount+"/cmdline.txt")
	sec("cloud-init", "if command -v cloud-init >/dev/null; then cloud-init status --long; else echo 'not installed'; fi")
	// Login accounts (Debian's UID_MIN to UID_MAX): "name:uid" each.
	sec("users", "getent passwd | awk -F: '$3 >= 1000 && $3 <= 60000 { print $1 \":\" $3 }'")
	sec("hosts-writer", "grep -q manage_etc_hosts /etc/hosts && echo cloud-init")
	sec("seed", SeedKeys(path.Join(BootMount, "user-data")))
	// The root partition and its card: "disk-bytes start-sector sectors fs-bytes".
	sec("disk", `r=$(findmnt -no SOURCE /); d=$(lsblk -no PKNAME "$r"); p=${r#/dev/}; echo "$(lsblk -bdno SIZE "/dev/$d") $(cat "/sys/class/block/$p/start") $(cat "/sys/class/block/$p/size") $(findmnt -bno SIZE /)"`)
	if t.Node.Role == profile.RoleHead {
		sec("forward", "cat /proc/sys/net/ipv4/ip_forward")
		sec("iptables", "iptables-save")
		sec("dhcpd", "systemctl is-active isc-dhcp-server")
		sec("leases", "cat /var/lib/dhcp/dhcpd.leases")
		sec("route-unit", "systemctl is-active magibake-cluster-route")
	} else {
		head := c.Head.Addr().String()
		sec("route-upstream", "ip -4 route get "+t.Upstream.String())
		sec("ping-head", "ping -c 1 -W 3 "+head+" >/dev/null && echo ok")
		sec("ping-upstream", "ping -c 2 -W 3 "+t.Upstream.String()+" >/dev/null && echo ok")
	}
	if c.WiFi != nil {
		sec("wifi-radio", "nmcli radio wifi")
		sec("wifi-state", "nmcli -g GENERAL.STATE device show "+shq(c.Uplink))
		sec("wifi-link", "iw dev "+shq(c.Uplink)+" link")
		sec("wifi-reg", "iw reg get")
	}
	if HasFirstBoot(t.Plan) {
		// done, or the last lines of its log: what failed.
		sec("firstboot", "if [ -e /var/lib/magibake/firstboot.done ]; then echo 'done'; else tail -n 3 /var/lib/magibake/firstboot.status; fi")
	}
	set := t.Node.Settings
	if set.Timezone != "" {
		sec("timezone", "timedatectl show -p Timezone --value")
	}
	if set.Locale != "" || set.Keyboard != nil {
		// systemd-localed reads /etc/locale.conf (/etc/default/locale) and
		// /etc/default/keyboard, as every login and the console do.
		sec("localectl", "localectl status")
	}
	if set.Keyboard != nil {
		// keyboard-setup loads this cache at boot, not /etc/default/keyboard:
		// made before the file, it holds the image's layout.
		sec("keymap", "if [ -n \"$(find "+keymapCache+" -newer /etc/default/keyboard 2>/dev/null)\" ]; then echo 'newer'; else ls -l --time-style=+%FT%T "+keymapCache+" /etc/default/keyboard 2>&1; fi")
	}
	if set.Locale != "" {
		// Warnings here mean the locale is not generated.
		sec("locale", "env -i LANG="+shq(set.Locale)+" locale 2>&1 >/dev/null; echo '#ran'")
	}
	if len(set.Packages) > 0 {
		sec("packages", "dpkg-query -W -f='${Package} ${db:Status-Abbrev}\\n' "+strings.Join(shqAll(set.Packages), " ")+" 2>&1")
	}
	if hasConfigEdit(t.Plan) {
		sec("config", "cat "+BootMount+"/config.txt")
	}
	writeFiles(&b, t.Plan)
	sec("end", "true")
	return b.String()
}

// fileFunc prints one entry per path: kind, path, then mode/uid/gid and
// sha256 or the link target. %a is octal with the set-id and sticky bits.
const fileFunc = `f() {
	if [ -L "$1" ]; then printf 'link\t%s\t%s\n' "$1" "$(readlink "$1")"
	elif [ -d "$1" ]; then printf 'dir\t%s\t%s\n' "$1" "$(stat -c '%a %u %g' "$1")"
	elif [ -f "$1" ]; then printf 'file\t%s\t%s %s\n' "$1" "$(stat -c '%a %u %g' "$1")" "$(sha256sum <"$1" | cut -d' ' -f1)"
	elif [ -e "$1" ]; then printf 'other\t%s\n' "$1"
	else printf 'missing\t%s\n' "$1"; fi
}
`

func writeFiles(b *strings.Builder, p *plan.Plan) {
	b.WriteString("s files\n")
	for _, path := range filePaths(p) {
		fmt.Fprintf(b, "f %s\n", shq(path))
	}
}

// FilesScript returns the read-only root script that prints what magibake
// apply compares with the plan: the hostname, the manifest, the boot
// partition's config.txt and cmdline.txt, /etc/hosts (the cluster's
// addresses as the node knows them), and every planned path's entry (as
// Script's files section). Parse reads its output.
func FilesScript(p *plan.Plan) string {
	var b strings.Builder
	b.WriteString("export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
	fmt.Fprintf(&b, "echo '%s'\n", begin)
	fmt.Fprintf(&b, "s() { printf '\\n%s%%s\\n' \"$1\"; }\n", marker)
	b.WriteString(fileFunc)
	b.WriteString("s hostname; hostname\n")
	b.WriteString("s manifest; cat /etc/magibake/manifest.json\n")
	b.WriteString("s config; cat " + BootMount + "/config.txt\n")
	b.WriteString("s cmdline; cat " + BootMount + "/cmdline.txt\n")
	b.WriteString("s hosts; cat /etc/hosts\n")
	writeFiles(&b, p)
	b.WriteString("s end; true\n")
	return b.String()
}

// SeedKeys returns a command that prints what of a cloud-init user-data file
// at file makes a node another one: the top-level hostname, fqdn and
// manage_etc_hosts keys, and "user NAME" for each name under user: or
// users: (Raspberry Pi Imager's OS customisation writes these), then
// "#read"; "#missing" when there is no such file. A value is printed up to
// its first character outside [A-Za-z0-9._-], quotes and comments removed,
// so a hash or key on the same line never is; a user: or users: value
// written inline (flow style) prints "user (not a block list)".
func SeedKeys(file string) string {
	return `if [ -f ` + shq(file) + ` ]; then awk '
function clean(v) { sub(/[[:space:]]+#.*/, "", v); gsub("[\"\047]", "", v); match(v, /^[A-Za-z0-9._-]*/); return substr(v, 1, RLENGTH) }
{ sub(/\r$/, "") }
/^[^[:space:]#-]/ {
	u = ($1 == "user:" || $1 == "users:")
	if (u) {
		v = $0; sub(/^[a-z]+:[[:space:]]*/, "", v); sub(/[[:space:]]*#.*/, "", v)
		if (v != "" && v != "[]") print "user " (clean(v) == v ? v : "(not a block list)")
	}
}
/^(hostname|fqdn|manage_etc_hosts):/ { v = $0; sub(/^[a-z_]+:[[:space:]]*/, "", v); print substr($0, 1, index($0, ":")) " " clean(v) }
u && /^[[:space:]]*-?[[:space:]]*name:/ { v = $0; sub(/^[[:space:]]*-?[[:space:]]*name:[[:space:]]*/, "", v); print "user " clean(v) }
END { print "#read" }' ` + shq(file) + `; else echo '#missing'; fi`
}

// LivePath is where a planned path is on the running node.
func LivePath(op plan.Op) string {
	if op.Partition == plan.Boot {
		return path.Join(BootMount, op.Path)
	}
	return op.Path
}

// filePaths are the node's paths of the plan's final operations, sorted.
func filePaths(p *plan.Plan) []string {
	var out []string
	for _, op := range p.Final() {
		if op.Kind == plan.EditCmdline || op.Kind == plan.EditConfig {
			continue // judged by what the edit names, from its own section
		}
		out = append(out, LivePath(op))
	}
	sort.Strings(out)
	return out
}

// HasFirstBoot says the plan installs magibake's first-boot unit.
func HasFirstBoot(p *plan.Plan) bool {
	for _, op := range p.Final() {
		if op.Partition == plan.Root && op.Path == FirstBootScript && op.Kind == plan.WriteFile {
			return true
		}
	}
	return false
}

// keymapCache is the console keymap console-setup caches.
const keymapCache = "/etc/console-setup/cached_setup_keyboard.sh"

// FirstBootScript is magibake's first-boot step on the node.
const FirstBootScript = "/usr/local/sbin/magibake-firstboot"

func hasConfigEdit(p *plan.Plan) bool {
	for _, op := range p.Final() {
		if op.Kind == plan.EditConfig {
			return true
		}
	}
	return false
}

func shqAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = shq(s)
	}
	return out
}

// shq quotes s for sh.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Facts is the script's output, by section name.
type Facts map[string]string

// Parse splits the script's output into its sections. Output that does not
// start with the script's first line means the script never ran.
func Parse(out string) (Facts, error) {
	i := strings.Index(out, begin+"\n")
	if i < 0 {
		return nil, errors.New("the check script did not run")
	}
	f := Facts{}
	for _, part := range strings.Split(out[i+len(begin)+1:], "\n"+marker)[1:] {
		name, body, _ := strings.Cut(part, "\n")
		f[name] = strings.TrimRight(body, "\n")
	}
	if _, ok := f["end"]; !ok {
		return f, fmt.Errorf("the check script stopped before its end (last section %q)", lastKey(out))
	}
	return f, nil
}

func lastKey(out string) string {
	i := strings.LastIndex(out, "\n"+marker)
	if i < 0 {
		return ""
	}
	name, _, _ := strings.Cut(out[i+len(marker)+1:], "\n")
	return name
}
