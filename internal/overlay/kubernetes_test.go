package overlay

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/testkit"
)

// What kubernetes: true adds to every node, and nothing else.
const (
	k8sModules  = "/etc/modules-load.d/k8s.conf"
	k8sSysctl   = "/etc/sysctl.d/k8s.conf"
	k8sRPISwap  = "/etc/rpi/swap.conf.d/90-magibake-kubernetes.conf"
	dphysWants  = "/etc/systemd/system/multi-user.target.wants/dphys-swapfile.service"
	dphysMask   = "/etc/systemd/system/dphys-swapfile.service"
	zramMask    = "/etc/systemd/system/dev-zram0.swap"
	baseCmdline = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
)

var k8sPaths = []string{k8sModules, k8sSysctl, k8sRPISwap, dphysWants, dphysMask, zramMask}

// TestKubernetesOff: the default profile gets none of the Kubernetes files
// and no cgroup words (the golden plans pin the rest).
func TestKubernetesOff(t *testing.T) {
	c := defaultCluster(t)
	if c.Kubernetes {
		t.Fatal("the example profile turns kubernetes on; it must be off by default")
	}
	for _, n := range c.Nodes {
		p := render(t, c, n.Hostname)
		for _, op := range p.Ops {
			for _, k := range k8sPaths {
				if op.Path == k {
					t.Errorf("%s: kubernetes is off but the plan has %s %s", n.Hostname, op.Kind, op.Path)
				}
			}
			if strings.Contains(op.Path, "swap") || strings.Contains(op.Path, "k8s") {
				t.Errorf("%s: unexpected %s %s", n.Hostname, op.Kind, op.Path)
			}
		}
		got := plan.ApplyCmdline(baseCmdline, find(t, p, plan.Boot, "/cmdline.txt").CmdlineSet, nil)
		if strings.Contains(got, "cgroup") {
			t.Errorf("%s: cmdline %q", n.Hostname, got)
		}
	}
}

// TestKubernetesOn checks each node's files as the programs that read them
// would: the kernel command line, modules-load.d(5), sysctl.d(5) and
// swap.conf(5) syntax, and the swap units' state as systemctl sees it on a
// Bookworm-shaped tree where dphys-swapfile is enabled.
func TestKubernetesOn(t *testing.T) {
	testkit.RequireTools(t, "systemctl", "systemd-analyze", "shellcheck")
	c := defaultCluster(t)
	c.Kubernetes = true
	for _, n := range c.Nodes {
		t.Run(n.Hostname, func(t *testing.T) {
			p := render(t, c, n.Hostname)

			// The cmdline edit keeps the base's words, the regulatory
			// domain, and adds the memory cgroup words once each.
			cmd := find(t, p, plan.Boot, "/cmdline.txt")
			got := plan.ApplyCmdline(baseCmdline, cmd.CmdlineSet, cmd.CmdlineRemove)
			want := strings.TrimSuffix(baseCmdline, "\n") + " cfg80211.ieee80211_regdom=GB cgroup_memory=1 cgroup_enable=memory\n"
			if got != want {
				t.Errorf("cmdline.txt\n got %q\nwant %q", got, want)
			}
			if again := plan.ApplyCmdline(got, cmd.CmdlineSet, cmd.CmdlineRemove); again != got {
				t.Errorf("re-baking the card's cmdline changes it: %q", again)
			}

			if got := configLines(t, k8sModules, find(t, p, plan.Root, k8sModules)); !reflect.DeepEqual(got, []string{"overlay", "br_netfilter"}) {
				t.Errorf("%s: modules %q", k8sModules, got)
			}
			moduleName := regexp.MustCompile(`^[a-z0-9_-]+$`)
			for _, m := range configLines(t, k8sModules, find(t, p, plan.Root, k8sModules)) {
				if !moduleName.MatchString(m) {
					t.Errorf("%s: %q is not a module name", k8sModules, m)
				}
			}
			wantSysctl := map[string]string{
				"net.bridge.bridge-nf-call-iptables":  "1",
				"net.bridge.bridge-nf-call-ip6tables": "1",
				"net.ipv4.ip_forward":                 "1",
			}
			if got := sysctls(t, find(t, p, plan.Root, k8sSysctl)); !reflect.DeepEqual(got, wantSysctl) {
				t.Errorf("%s: %v, want %v", k8sSysctl, got, wantSysctl)
			}
			if got := ini(t, find(t, p, plan.Root, k8sRPISwap).Content); !reflect.DeepEqual(got, map[string]string{"Main.Mechanism": "none"}) {
				t.Errorf("%s: %v, want Mechanism=none in [Main]", k8sRPISwap, got)
			}
			for _, path := range []string{k8sModules, k8sSysctl, k8sRPISwap} {
				if op := find(t, p, plan.Root, path); plan.OctalMode(op.Mode) != "0644" || op.UID != 0 || op.Secret {
					t.Errorf("%s: mode %s uid %d secret %v", path, plan.OctalMode(op.Mode), op.UID, op.Secret)
				}
			}

			// A Bookworm-shaped base: dphys-swapfile installed and enabled.
			dir := t.TempDir()
			unit := filepath.Join(dir, "lib/systemd/system/dphys-swapfile.service")
			os.MkdirAll(filepath.Dir(unit), 0o755)
			os.WriteFile(unit, []byte("[Unit]\nDescription=dphys-swapfile (stand-in)\n[Service]\nType=oneshot\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"), 0o644)
			os.MkdirAll(filepath.Join(dir, filepath.Dir(dphysWants)), 0o755)
			os.Symlink("/lib/systemd/system/dphys-swapfile.service", filepath.Join(dir, dphysWants))
			if state := isEnabled(t, dir, "dphys-swapfile.service"); state != "enabled" {
				t.Fatalf("stand-in base: dphys-swapfile.service is %q before baking, want enabled", state)
			}
			applyOnto(t, dir, p)
			for _, u := range []string{"dphys-swapfile.service", "dev-zram0.swap"} {
				if state := isEnabled(t, dir, u); state != "masked" {
					t.Errorf("%s is %q after baking, want masked", u, state)
				}
			}
			if _, err := os.Lstat(filepath.Join(dir, dphysWants)); err == nil {
				t.Errorf("%s is still there", dphysWants)
			}
			// The node's own units still verify with the masks in place.
			verifyUnitsAndScripts(t, p, dir)
		})
	}
}

// applyOnto applies a plan's root-partition operations to a directory that
// holds a stand-in base, the way bake applies them to the ext4 root.
func applyOnto(t *testing.T, dir string, p *plan.Plan) {
	t.Helper()
	for _, op := range p.Ops {
		if op.Partition != plan.Root {
			continue
		}
		dst := filepath.Join(dir, op.Path)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		switch op.Kind {
		case plan.WriteFile:
			if err := os.WriteFile(dst, op.Content, op.Mode.Perm()); err != nil {
				t.Fatal(err)
			}
		case plan.Symlink:
			os.Remove(dst)
			if err := os.Symlink(op.Target, dst); err != nil {
				t.Fatal(err)
			}
		case plan.Remove:
			if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
	}
}

func isEnabled(t *testing.T, root, unit string) string {
	t.Helper()
	// is-enabled exits non-zero for every state but enabled; the state it
	// prints is what counts.
	out, _ := exec.Command("systemctl", "--root="+root, "is-enabled", unit).Output()
	return strings.TrimSpace(string(out))
}

// configLines returns the non-comment lines of a modules-load.d(5) style
// file: "#" and ";" start comments, blank lines are ignored.
func configLines(t *testing.T, name string, op plan.Op) []string {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(op.Content))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		lines = append(lines, line)
	}
	if len(op.Content) == 0 || op.Content[len(op.Content)-1] != '\n' {
		t.Errorf("%s does not end with a newline", name)
	}
	return lines
}

// sysctls parses a sysctl.d(5) file as systemd-sysctl does: "key = value"
// lines, "." or "/" separated keys, an optional "-" to ignore failures. A
// line it would reject fails the test.
func sysctls(t *testing.T, op plan.Op) map[string]string {
	t.Helper()
	key := regexp.MustCompile(`^-?[a-z0-9_-]+([./][a-z0-9_-]+)+$`)
	m := map[string]string{}
	for _, line := range configLines(t, op.Path, op) {
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || !key.MatchString(k) || v == "" {
			t.Errorf("%s: systemd-sysctl would reject %q", op.Path, line)
			continue
		}
		k = strings.ReplaceAll(strings.TrimPrefix(k, "-"), "/", ".")
		if _, dup := m[k]; dup {
			t.Errorf("%s: %s set twice", op.Path, k)
		}
		m[k] = v
	}
	return m
}
