// Package overlay renders the overlay trees for one node into a Plan.
//
// An overlay tree has one directory per role plus common/ (applied first).
// Under each, boot/ mirrors the FAT boot partition and root/ the ext4 root
// filesystem. Rules, one mechanism for every node:
//   - NAME.tmpl is a text/template rendered with the node and cluster
//     (missing keys are errors); other files are copied as they are;
//   - template functions mode "0600", owner "user" (or "UID:GID"), secret
//     and skip set the file's mode, owner, masking, or drop the file;
//   - "@user@" in a path is the profile's user name, and %XX escapes are
//     decoded (":" cannot be in a Go module's file names; write %3A);
//   - NAME.symlink creates a symlink whose target is the file's text;
//   - NAME.remove deletes NAME from the base;
//   - .dir describes its own directory (mode/owner via the template functions);
//   - cmdline.txt.edit edits the boot command line: "+word" sets, "-key" removes;
//   - a systemd unit written under /etc/systemd/system is enabled the way
//     systemctl enable would, from its [Install] WantedBy=/RequiredBy=.
//
// Later trees replace earlier ones path by path: embedded common, embedded
// role, then the user's --overlays common and role.
package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/magibake/magibake/internal/deb"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/redact"
)

// UserUID is the uid (and gid) of the first user on Raspberry Pi OS: the
// image's default user that userconf.txt renames, or cloud-init's first user.
const UserUID = 1000

// Tree is one overlay source: an fs.FS holding common/ and role directories,
// the name shown in messages ("overlays (embedded)" or the --overlays dir),
// and the name plans and manifests record as a file's origin.
type Tree struct {
	FS      fs.FS
	Display string
	// Origin names the tree in each operation's Source ("ORIGIN:PATH",
	// PATH inside the tree). Never a host path: a card must not change
	// with where its overlays are kept. "" means Display.
	Origin string
}

// source is what an operation made from name records as its origin.
func (t Tree) source(name string) string {
	if t.Origin == "" {
		return path.Join(t.Display, name)
	}
	return t.Origin + ":" + name
}

// Data is what templates see.
type Data struct {
	Node *profile.Node
	// HostKey is Node's SSH host key (internal/hostkey): state kept beside
	// the profiles, not part of them.
	HostKey hostkey.Key
	Cluster *profile.Cluster
	Head    *profile.Node
	Workers []profile.Node
	// Packages are what Node's first boot installs: HeadPackages on the
	// head, then the profile's packages.
	Packages []string
	// HeadPackages are the head's DHCP server and iptables.
	HeadPackages []string
	// FirstBoot says Node has a first-boot step (magibake-firstboot).
	FirstBoot bool
}

// headPackages are what the head's first boot installs for its DHCP server
// and NAT, whatever the profile adds.
var headPackages = []string{"isc-dhcp-server", "iptables"}

// Render builds the Plan for node from the trees, in order, with the
// nodes' host keys.
func Render(c *profile.Cluster, keys hostkey.Keys, nodeName string, trees []Tree, mtime time.Time) (*plan.Plan, error) {
	node, err := c.Node(nodeName)
	if err != nil {
		return nil, err
	}
	key := keys[node.Hostname]
	if key.Private == "" || key.Public == "" {
		// A card without its node's stable key would quietly get a new
		// identity at first boot: never render one.
		return nil, fmt.Errorf("node %s: no SSH host key given (internal/hostkey.Load)", node.Hostname)
	}
	data := &Data{Node: node, HostKey: key, Cluster: c, Head: c.HeadNode(), HeadPackages: headPackages}
	for _, n := range c.Nodes {
		if n.Role == profile.RoleWorker {
			data.Workers = append(data.Workers, n)
		}
	}
	set := node.Settings
	if node.Role == profile.RoleHead {
		data.Packages = append(data.Packages, headPackages...)
	}
	for _, pkg := range set.Packages {
		if !slices.Contains(data.Packages, pkg) {
			data.Packages = append(data.Packages, pkg)
		}
	}
	data.FirstBoot = len(data.Packages) > 0 || set.Upgrade || set.Locale != "" || set.Keyboard != nil
	ops := map[opKey]plan.Op{}
	for _, t := range trees {
		for _, dir := range []string{"common", string(node.Role)} {
			if err := renderTree(t, dir, data, ops); err != nil {
				return nil, err
			}
		}
	}
	if len(data.Packages) > 0 && c.OfflineDebs != "" {
		if err := addDebs(c.OfflineDebs, data.Packages, ops); err != nil {
			return nil, err
		}
	}
	if len(set.ConfigTxt) > 0 {
		op := plan.Op{Partition: plan.Boot, Kind: plan.EditConfig, Path: "/config.txt", Source: "profile: config_txt"}
		op.ConfigLines = append(op.ConfigLines, set.ConfigTxt...)
		ops[opKey{op.Partition, op.Path}] = op
	}
	enableUnits(ops)
	p := &plan.Plan{Node: node.Hostname, MTime: mtime, Secrets: Secrets(c, key), Expects: expects(set)}
	for _, op := range ops {
		// Secret by what it holds, whichever template or user overlay
		// wrote it and whether it called secret or not.
		if p.Secrets.In(op.Content) || p.Secrets.In([]byte(op.Target)) || p.Secrets.In([]byte(strings.Join(op.CmdlineSet, " "))) {
			op.Secret = true
		}
		p.Ops = append(p.Ops, op)
	}
	sort.Slice(p.Ops, func(i, j int) bool {
		a, b := p.Ops[i], p.Ops[j]
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Path < b.Path
	})
	return p, nil
}

// Secrets returns every secret value a card of node may hold, in each form
// the overlays write it: the Wi-Fi passphrase (as given and escaped for a
// keyfile) and the PSK derived from it, the password hash, the node's
// private host key. Plans mark and mask files by these values.
func Secrets(c *profile.Cluster, key hostkey.Key) *redact.Secrets {
	values := c.SecretValues()
	if w := c.WiFi; w != nil && w.Passphrase != "" {
		values = append(values, keyfileString(w.Passphrase))
		if psk, err := wpaPSK(w.SSID, w.Passphrase); err == nil {
			values = append(values, psk)
		}
	}
	if k := key.Private; k != "" {
		values = append(values, k, strings.TrimSpace(k))
		// A key written some other way still holds its base64 lines.
		for _, line := range strings.Split(k, "\n") {
			if len(line) >= 40 && !strings.HasPrefix(line, "-----") {
				values = append(values, line)
			}
		}
	}
	return redact.New(values...)
}

type opKey struct {
	part plan.Partition
	path string
}

func renderTree(t Tree, dir string, data *Data, ops map[opKey]plan.Op) error {
	if _, err := fs.Stat(t.FS, dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fs.WalkDir(t.FS, dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay %s: %w", path.Join(t.Display, name), err)
		}
		display := path.Join(t.Display, name)
		if d.Type()&fs.ModeSymlink != 0 {
			return fmt.Errorf("overlay %s: is a symlink on the host; use NAME.symlink files for symlinks in the image", display)
		}
		if d.IsDir() || d.Name() == ".keep" {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("overlay %s: not a regular file", display)
		}
		op, err := renderFile(t.FS, name, display, t.source(name), data)
		if err != nil {
			return err
		}
		if op != nil {
			ops[opKey{op.Partition, op.Path}] = *op
		}
		return nil
	})
}

// renderFile turns one overlay file into an operation, or nil when skipped.
func renderFile(fsys fs.FS, name, display, source string, data *Data) (*plan.Op, error) {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("overlay %s: %w", display, err)
	}
	// name is ROLE/PART/rest...
	parts := strings.SplitN(name, "/", 3)
	if len(parts) < 3 || (parts[1] != "boot" && parts[1] != "root") {
		return nil, fmt.Errorf("overlay %s: files go under boot/ (FAT boot partition) or root/ (ext4 root)", display)
	}
	op := &plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Mode: 0o644, Source: source}
	if parts[1] == "boot" {
		op.Partition = plan.Boot
	}
	rel := parts[2]
	content := raw
	if strings.HasSuffix(rel, ".tmpl") {
		rel = strings.TrimSuffix(rel, ".tmpl")
		var attrs fileAttrs
		content, err = execute(display, raw, data, &attrs)
		if err != nil {
			return nil, err
		}
		if attrs.skip {
			return nil, nil
		}
		if attrs.mode != nil {
			op.Mode = *attrs.mode
		}
		op.UID, op.GID, op.Secret = attrs.uid, attrs.gid, attrs.secret
	}
	if rel, err = decodePath(rel); err != nil {
		return nil, fmt.Errorf("overlay %s: bad %%XX escape in the name: %w", display, err)
	}
	if strings.Contains(rel, "@user@") {
		if data.Cluster.User.Name == "" {
			return nil, fmt.Errorf("overlay %s: path uses @user@ but the profile has no user name", display)
		}
		rel = strings.ReplaceAll(rel, "@user@", data.Cluster.User.Name)
	}
	target := "/" + rel
	if path.Clean(target) != target || strings.Contains(rel, "..") {
		return nil, fmt.Errorf("overlay %s: path %q is not clean", display, target)
	}
	base := path.Base(target)
	switch {
	case base == ".dir":
		op.Kind, op.Path, op.Content = plan.Mkdir, path.Dir(target), nil
		if op.Mode == 0o644 {
			op.Mode = 0o755
		}
		if op.Path == "/" {
			return nil, fmt.Errorf("overlay %s: the partition root cannot be changed", display)
		}
	case strings.HasSuffix(base, ".symlink"):
		op.Kind, op.Path = plan.Symlink, strings.TrimSuffix(target, ".symlink")
		op.Target, op.Content, op.Mode = strings.TrimSpace(string(content)), nil, 0o777
		if op.Target == "" || strings.ContainsAny(op.Target, "\n\x00") {
			return nil, fmt.Errorf("overlay %s: a .symlink file holds one target path", display)
		}
	case strings.HasSuffix(base, ".remove"):
		op.Kind, op.Path, op.Content, op.Mode = plan.Remove, strings.TrimSuffix(target, ".remove"), nil, 0
	case strings.HasSuffix(base, ".edit"):
		op.Kind, op.Path, op.Content, op.Mode = plan.EditCmdline, strings.TrimSuffix(target, ".edit"), nil, 0
		if op.Partition != plan.Boot || op.Path != "/cmdline.txt" {
			return nil, fmt.Errorf("overlay %s: only boot/cmdline.txt can be edited", display)
		}
		for i, line := range strings.Split(string(content), "\n") {
			line = strings.TrimSpace(line)
			switch {
			case line == "":
			case strings.HasPrefix(line, "+") && len(line) > 1 && !strings.ContainsAny(line[1:], " \t"):
				op.CmdlineSet = append(op.CmdlineSet, line[1:])
			case strings.HasPrefix(line, "-") && len(line) > 1 && !strings.ContainsAny(line[1:], " \t="):
				op.CmdlineRemove = append(op.CmdlineRemove, line[1:])
			default:
				return nil, fmt.Errorf("overlay %s: line %d of the rendered edit: want \"+word\" or \"-key\", got %q", display, i+1, line)
			}
		}
		if len(op.CmdlineSet)+len(op.CmdlineRemove) == 0 {
			return nil, nil
		}
	default:
		op.Path, op.Content = target, content
	}
	return op, nil
}

type fileAttrs struct {
	mode     *fs.FileMode
	uid, gid uint32
	secret   bool
	skip     bool
}

func execute(display string, raw []byte, data *Data, attrs *fileAttrs) ([]byte, error) {
	funcs := template.FuncMap{
		"mode": func(s string) (string, error) {
			v, err := strconv.ParseUint(s, 8, 32)
			if err != nil || v > 0o7777 {
				return "", fmt.Errorf("mode %q: want octal like \"0644\"", s)
			}
			m := fs.FileMode(v & 0o777)
			if v&0o4000 != 0 {
				m |= fs.ModeSetuid
			}
			if v&0o2000 != 0 {
				m |= fs.ModeSetgid
			}
			if v&0o1000 != 0 {
				m |= fs.ModeSticky
			}
			attrs.mode = &m
			return "", nil
		},
		"owner": func(s string) (string, error) {
			if s == "user" {
				attrs.uid, attrs.gid = UserUID, UserUID
				return "", nil
			}
			u, g, ok := strings.Cut(s, ":")
			uid, err1 := strconv.ParseUint(u, 10, 32)
			gid, err2 := strconv.ParseUint(g, 10, 32)
			if !ok || err1 != nil || err2 != nil {
				return "", fmt.Errorf("owner %q: want \"user\" or \"UID:GID\"", s)
			}
			attrs.uid, attrs.gid = uint32(uid), uint32(gid)
			return "", nil
		},
		"secret":    func() string { attrs.secret = true; return "" },
		"skip":      func() string { attrs.skip = true; return "" },
		"netmask":   netmask,
		"broadcast": broadcast,
		"join":      join,
		"wpapsk":    wpaPSK,
		"ssid":      keyfileSSID,
		"keyfile":   keyfileString,
		"uuid":      stableUUID,
		"quote":     quote,
	}
	tmpl, err := template.New(display).Option("missingkey=error").Funcs(funcs).Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("overlay %w", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("overlay %w", err)
	}
	return out.Bytes(), nil
}

func netmask(p netip.Prefix) string {
	b := p.Masked().Addr().As4()
	bits := p.Bits()
	for i := range b {
		switch {
		case bits >= 8:
			b[i], bits = 255, bits-8
		default:
			b[i], bits = byte(0xff<<(8-bits)), 0
		}
	}
	return netip.AddrFrom4(b).String()
}

func broadcast(p netip.Prefix) string {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	for i := 3; i >= 0 && host > 0; i-- {
		n := min(host, 8)
		b[i] |= byte(1<<n - 1)
		host -= n
	}
	return netip.AddrFrom4(b).String()
}

func join(list any, sep string) (string, error) {
	switch l := list.(type) {
	case []netip.Addr:
		s := make([]string, len(l))
		for i, a := range l {
			s[i] = a.String()
		}
		return strings.Join(s, sep), nil
	case []string:
		return strings.Join(l, sep), nil
	}
	return "", fmt.Errorf("join: cannot join %T", list)
}

// DebsDir is where the head's first boot finds the offline .deb files.
const DebsDir = "/var/lib/magibake/debs"

// addDebs copies the profile's offline .deb files that installing want
// takes into the image, for the first-boot unit to install without network:
// a worker that installs one tool does not get the head's DHCP server.
func addDebs(dir string, want []string, ops map[opKey]plan.Op) error {
	debs, err := deb.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("offline_debs %s: %w", dir, err)
	}
	for _, f := range deb.Needed(debs, want) {
		data, err := os.ReadFile(f.Path)
		if err != nil {
			return fmt.Errorf("offline_debs: %w", err)
		}
		op := plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: path.Join(DebsDir, filepath.Base(f.Path)),
			Mode: 0o644, Content: data, Source: "offline_debs:" + filepath.Base(f.Path)}
		ops[opKey{op.Partition, op.Path}] = op
	}
	return nil
}

// expects are the files the base must ship for the node's settings: a time
// zone, locale or keyboard layout it does not know would be baked, and
// then fail at boot.
func expects(s profile.Settings) []plan.Expect {
	at := func(key string) string {
		if w := s.At[key]; w != "" {
			return w + ": " + key
		}
		return key
	}
	var out []plan.Expect
	if tz := s.Timezone; tz != "" {
		out = append(out, plan.Expect{Path: "/usr/share/zoneinfo/" + tz,
			Why: fmt.Sprintf("%s: %s is not a zone the base ships", at("timezone"), tz)})
	}
	if l := s.Locale; l != "" && !strings.HasPrefix(l, "C.") {
		// de_DE.UTF-8 is built from locales/de_DE, sr_RS.UTF-8@latin from sr_RS@latin.
		lang, _, _ := strings.Cut(l, ".")
		if _, mod, ok := strings.Cut(l, "@"); ok {
			lang += "@" + mod
		}
		out = append(out, plan.Expect{Path: "/usr/share/i18n/locales/" + lang,
			Why: fmt.Sprintf("%s: %s is not a locale the base can generate", at("locale"), l)})
	}
	if k := s.Keyboard; k != nil {
		const rules = "/usr/share/X11/xkb/rules/base.lst"
		for _, layout := range strings.Split(k.Layout, ",") {
			out = append(out, plan.Expect{Path: "/usr/share/X11/xkb/symbols/" + layout,
				Why: fmt.Sprintf("%s: %s is not a layout the base ships", at("keyboard"), layout)})
		}
		// XKB takes an unknown model, variant or option without a word and
		// gives the plain layout: only its rules list says which exist.
		listed := func(what, name, prefix string) {
			out = append(out, plan.Expect{Path: rules, Contains: regexp.QuoteMeta(name) + `\s+` + prefix,
				Why: fmt.Sprintf("%s: %s %s is not in the base's XKB rules (%s)", at("keyboard"), what, name, rules)})
		}
		if k.Model != "" {
			listed("model", k.Model, "")
		}
		if k.Variant != "" {
			listed("variant", k.Variant, regexp.QuoteMeta(strings.Split(k.Layout, ",")[0])+":")
		}
		for _, o := range strings.Split(k.Options, ",") {
			if o != "" {
				listed("option", o, "")
			}
		}
	}
	return out
}

// enableUnits adds the symlinks `systemctl enable` would create for units the
// overlays write into /etc/systemd/system.
func enableUnits(ops map[opKey]plan.Op) {
	var add []plan.Op
	for k, op := range ops {
		if k.part != plan.Root || op.Kind != plan.WriteFile || path.Dir(op.Path) != "/etc/systemd/system" {
			continue
		}
		unit := path.Base(op.Path)
		for _, target := range installTargets(op.Content) {
			for _, w := range target.units {
				add = append(add, plan.Op{
					Partition: plan.Root, Kind: plan.Symlink, Mode: 0o777,
					Path:   path.Join("/etc/systemd/system", w+target.suffix, unit),
					Target: op.Path, Source: op.Source + " [Install]",
				})
			}
		}
	}
	for _, op := range add {
		k := opKey{op.Partition, op.Path}
		if _, exists := ops[k]; !exists {
			ops[k] = op
		}
	}
}

type install struct {
	suffix string
	units  []string
}

func installTargets(unit []byte) []install {
	var wants, requires []string
	section := ""
	for _, line := range strings.Split(string(unit), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if section != "[Install]" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "WantedBy":
			wants = append(wants, strings.Fields(v)...)
		case "RequiredBy":
			requires = append(requires, strings.Fields(v)...)
		}
	}
	return []install{{".wants", wants}, {".requires", requires}}
}
