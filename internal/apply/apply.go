// Package apply brings a running node's files to today's plan: which planned
// paths differ on the node, when each change can take effect there, and the
// root script that writes them (renamed into place), keeps what it replaces, makes
// what reads them take them up, and puts everything back when a step fails.
package apply

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/magibake/magibake/internal/check"
	"github.com/magibake/magibake/internal/compare"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
)

// Effect says when a change reaches the running node.
type Effect int

const (
	// Now: written, and what reads it is reloaded or restarted.
	Now Effect = iota
	// Reboot: written; only a boot reads it.
	Reboot
	// Reflash: not written; only a card's first boot reads it.
	Reflash
)

// String is the effect as apply prints it.
func (e Effect) String() string {
	switch e {
	case Now:
		return "now"
	case Reboot:
		return "after a reboot"
	}
	return "takes effect when reflashed"
}

// Change is one planned path that differs on the node.
type Change struct {
	Op plan.Op
	// Path is where the node has it (the boot partition under /boot/firmware).
	Path string
	// Problem is how the node's differs, in check's words (secrets masked).
	Problem string
	Effect  Effect
	// Why says what follows the write, or why it is not written.
	Why string
	// Content is what is written: the op's, or for a config.txt edit the
	// node's file with the edit applied.
	Content []byte
	// check is run on the staged file ("$1") before anything is replaced.
	check string
	// then are the commands that make the node take the change up, run
	// once each after every file is in place, in the order first named.
	then []string
}

// Probe is the read-only root script whose output Changes reads: the node's
// name, its manifest, config.txt and the state of every planned path.
func Probe(p *plan.Plan) string { return check.FilesScript(p) }

// Mismatch is a node that is not the one the plan is for: apply refuses it
// before changing anything.
type Mismatch struct{ Node, Why string }

func (m *Mismatch) Error() string { return m.Node + ": " + m.Why }

// Changes compares p, node's plan in cluster, with what Probe printed.
func Changes(p *plan.Plan, cluster string, f check.Facts) ([]Change, error) {
	if got := strings.TrimSpace(f["hostname"]); got != p.Node {
		return nil, &Mismatch{p.Node, fmt.Sprintf("its hostname is %q, not %s: refused", got, p.Node)}
	}
	m, err := manifest.Parse([]byte(f["manifest"]))
	switch {
	case f["manifest"] == "":
		return nil, &Mismatch{p.Node, "no " + manifest.Path + ": not a card baked by magibake; refused"}
	case err != nil:
		return nil, &Mismatch{p.Node, err.Error() + "; refused"}
	case m.Node != p.Node:
		return nil, &Mismatch{p.Node, fmt.Sprintf("its manifest names node %q: refused", m.Node)}
	case m.Cluster != "" && m.Cluster != cluster:
		return nil, &Mismatch{p.Node, fmt.Sprintf("its manifest names cluster %q, not %s: refused", m.Cluster, cluster)}
	}
	live := check.LiveFiles(f["files"])
	var out []Change
	for _, op := range p.Final() {
		if op.Partition == plan.Root && op.Path == manifest.Path {
			continue // written last, to what the node then holds
		}
		c := Change{Op: op, Path: check.LivePath(op), Content: op.Content}
		if strings.ContainsAny(c.Path, " \t\n") {
			return nil, fmt.Errorf("%s: %q: apply does not write paths with white space", p.Node, c.Path)
		}
		switch op.Kind {
		case plan.EditConfig:
			text := f["config"]
			if strings.TrimSpace(text) == "" {
				// Editing an empty reading would replace the node's file.
				return nil, fmt.Errorf("%s: could not read %s", p.Node, c.Path)
			}
			if missing := plan.ConfigMissing(text, op.ConfigLines); len(missing) > 0 {
				var ls []string
				for _, l := range missing {
					ls = append(ls, "["+l.Section+"] "+l.Line)
				}
				c.Problem = "lacks " + strings.Join(ls, ", ")
				c.Content = []byte(plan.ApplyConfig(text, op.ConfigLines))
			}
		case plan.EditCmdline:
			// The first boot rewrote it (its PARTUUIDs, init=): judged by
			// check, never written here.
			if notOne, unset, kept := compare.Cmdline(f["cmdline"]+"\n", op); notOne || len(unset) > 0 || len(kept) > 0 {
				c.Problem = "differs from the plan's edit"
			}
		default:
			c.Problem = check.FileProblem(op, live[c.Path], p.Secrets)
		}
		if c.Problem == "" || consumedGone(op, live[c.Path]) {
			continue
		}
		classify(&c)
		out = append(out, c)
	}
	return out, nil
}

// consumedGone: a first-boot trigger file (ssh, userconf.txt) that the first
// boot acted on and deleted is as it should be.
func consumedGone(op plan.Op, w []string) bool {
	return op.Partition == plan.Boot && check.Consumed(op.Path) && (len(w) == 0 || w[0] == "missing")
}

// bootOnlyUnits act at boot only: restarting them on a running node would
// redo a boot's work (cloud-init), wait for nothing, or redo a first boot.
var bootOnlyUnits = []string{"cloud-init", "cloud-init-local", "cloud-config", "cloud-final", "cloud-init-main",
	"NetworkManager-wait-online", "magibake-firstboot", "magibake-host-keys", "magibake-wifi-unblock"}

// classify sets c's effect, its check and what follows its write.
func classify(c *Change) {
	op := c.Op
	p := op.Path
	if op.Partition == plan.Boot {
		switch {
		case op.Kind == plan.EditCmdline:
			c.Effect, c.Why = Reflash, "the first boot rewrote cmdline.txt; a changed command line reaches the node on a new card"
		case check.Consumed(p) || seedFile(p):
			c.Effect, c.Why = Reflash, "only the first boot reads "+path.Base(p)
		default:
			c.Effect, c.Why = Reboot, "the firmware reads the boot partition at boot"
		}
		return
	}
	unit := unitOf(p)
	switch {
	case p == "/usr/local/sbin/magibake-firstboot" || strings.HasPrefix(p, "/var/lib/magibake/debs/") || unit == "magibake-firstboot.service":
		c.Effect, c.Why = Reflash, "only the first boot runs magibake-firstboot"
	case p == "/etc/hostname" || strings.HasPrefix(p, "/etc/ssh/ssh_host_"):
		c.Effect, c.Why = Reflash, "the node's identity: a new card"
	case p == "/etc/default/keyboard" || p == "/etc/locale.conf" || p == "/etc/default/locale":
		// The keymap cache and the locale are built from them by
		// magibake-firstboot; written alone they would promise what the
		// node does not have.
		c.Effect, c.Why = Reflash, "the first boot builds the console keymap and the locale from it"
	case strings.HasPrefix(p, "/etc/ssh/sshd_config") || unit == "ssh.service" || unit == "sshd.service" || unit == "ssh.socket":
		c.Effect, c.Why = Reboot, "sshd takes it up when it starts; apply does not restart the sshd it came in through"
		if unit != "" {
			c.then = []string{"systemctl daemon-reload"}
		}
	case strings.HasPrefix(p, "/var/lib/NetworkManager/"):
		c.Effect, c.Why = Reboot, "NetworkManager reads its state when it starts"
	case strings.HasPrefix(p, "/etc/sudoers.d/"):
		// Its rule goes with the user's password, which only the first
		// boot sets: changed alone it could lock sudo, and apply with it.
		c.Effect, c.Why = Reflash, "sudo's rule goes with the user's password, which the first boot sets"
	case p == "/usr/local/sbin/magibake-wifi-rejoin":
		c.Effect, c.Why = Now, "its timer runs it every two minutes"
	case p == "/etc/magibake/authorized_keys" || strings.HasPrefix(p, "/var/lib/magibake/host-keys") ||
		strings.HasPrefix(p, "/usr/local/sbin/magibake-") || strings.HasPrefix(p, "/etc/sysctl.d/"):
		c.Effect, c.Why = Reboot, "read at boot"
	case strings.HasPrefix(p, "/etc/modules-load.d/") || strings.HasPrefix(p, "/etc/rpi/") || strings.HasPrefix(p, "/etc/cloud/"):
		c.Effect, c.Why = Reboot, "read at boot"
	case p == "/etc/dhcp/dhcpd.conf" || p == "/etc/default/isc-dhcp-server":
		c.Effect, c.Why = Now, "dhcpd -t accepts it, isc-dhcp-server restarts"
		if p == "/etc/dhcp/dhcpd.conf" {
			// dhcpd -q prints nothing when it refuses a file: the line it
			// names (and the caret under it) say why, not its banner.
			c.check = `out=$(dhcpd -t -4 -cf "$1" 2>&1) && exit 0; printf '%s\n' "$out" | grep -A2 ' line [0-9]*: ' || printf '%s\n' "$out" | tail -n 3; exit 1`
		}
		c.then = []string{"systemctl restart isc-dhcp-server"}
	case p == "/etc/magibake/iptables.rules":
		c.Effect, c.Why = Now, "iptables-restore --test accepts it, the rules are restored (replaced, not appended)"
		c.check = `iptables-restore --test "$1"`
		c.then = []string{"iptables-restore /etc/magibake/iptables.rules"}
	case strings.HasPrefix(p, "/etc/NetworkManager/system-connections/"):
		c.Effect, c.Why = Now, "NetworkManager reloads its profiles; an active connection takes it up when it next connects"
		c.then = []string{"nmcli connection reload"}
	case unit != "":
		name := strings.TrimSuffix(unit, path.Ext(unit))
		for _, b := range bootOnlyUnits {
			if name == b {
				c.Effect, c.Why = Reboot, unit+" acts at boot only"
				c.then = []string{"systemctl daemon-reload"}
				return
			}
		}
		c.Effect = Now
		c.then = []string{"systemctl daemon-reload"}
		switch {
		case strings.HasSuffix(path.Dir(p), ".wants") && op.Kind == plan.Symlink:
			// Enabled by the plan: started as a boot would start it.
			c.Why = "systemd reloads; " + unit + " starts"
			c.then = append(c.then, "systemctl start "+shq(unit))
		case op.Kind == plan.Symlink && op.Target == "/dev/null", op.Kind == plan.Remove:
			c.Effect, c.Why = Reboot, "systemd reloads; a masked or disabled "+unit+" stays as it is until a reboot"
		default:
			// Running ones restart; a stopped one stays stopped.
			c.Why = "systemd reloads; " + unit + " restarts if it runs"
			c.then = append(c.then, "systemctl try-restart "+shq(unit))
		}
	default:
		c.Effect, c.Why = Now, "read where it is used"
	}
}

// unitOf is the systemd unit a path under /etc/systemd/system belongs to:
// the unit file, a drop-in's unit or a wants link's target; "" otherwise.
func unitOf(p string) string {
	dir, base := path.Split(p)
	dir = strings.TrimSuffix(dir, "/")
	switch {
	case dir == "/etc/systemd/system":
		return base
	case path.Dir(dir) == "/etc/systemd/system" && strings.HasSuffix(dir, ".d"):
		return strings.TrimSuffix(path.Base(dir), ".d")
	case path.Dir(dir) == "/etc/systemd/system" && (strings.HasSuffix(dir, ".wants") || strings.HasSuffix(dir, ".requires")):
		return base
	}
	return ""
}

// seedFile is a cloud-init seed file on the boot partition (NoCloud).
func seedFile(p string) bool {
	switch p {
	case "/user-data", "/meta-data", "/network-config":
		return true
	}
	return false
}

func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// NewManifest is what the node's manifest says once the written changes
// are made: old's entries, with those of the written paths replaced by the
// plan's, and info's tool version, cluster and profile digest. The base
// and the bake time stay the card's.
func NewManifest(old *manifest.Manifest, p *plan.Plan, changes []Change, info manifest.Info) ([]byte, error) {
	planned := manifest.New(&plan.Plan{Node: p.Node, Ops: p.Final(), MTime: p.MTime}, info)
	byPath := map[string]manifest.Entry{}
	for _, e := range planned.Files {
		byPath[e.Partition+":"+e.Path] = e
	}
	m := *old
	m.Version, m.Cluster, m.ProfileDigest = info.Version, info.Cluster, info.ProfileDigest
	m.Files = slices.Clone(old.Files)
	for _, c := range changes {
		if c.Effect == Reflash {
			continue
		}
		k := c.Op.Partition.String() + ":" + c.Op.Path
		i := slices.IndexFunc(m.Files, func(e manifest.Entry) bool { return e.Partition+":"+e.Path == k })
		switch {
		case i >= 0:
			m.Files[i] = byPath[k]
		default:
			m.Files = append(m.Files, byPath[k])
		}
	}
	op, err := m.Op()
	if err != nil {
		return nil, err
	}
	return op.Content, nil
}
