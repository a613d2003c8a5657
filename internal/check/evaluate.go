package check

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/magibake/magibake/internal/compare"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/redact"
	"github.com/magibake/magibake/internal/termtext"
)

// Result is one check of one node.
type Result struct {
	Node   string `json:"node"`
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// consumed are the boot partition's trigger files that Raspberry Pi OS's
// first boot acts on and deletes: still there means the first boot did not
// get that far.
var consumed = map[string]string{
	"/ssh":          "sshswitch enables SSH and deletes it",
	"/userconf.txt": "userconf-pi creates the user and deletes it",
}

// Consumed says p is a boot partition trigger file that the first boot
// acts on and deletes.
func Consumed(p string) bool { _, ok := consumed[p]; return ok }

type judge struct {
	t   Target
	f   Facts
	out []Result
}

func (j *judge) add(name string, ok bool, format string, a ...any) {
	j.out = append(j.out, Result{Node: j.t.Node.Hostname, Check: name, OK: ok, Detail: fmt.Sprintf(format, a...)})
}

// Evaluate judges a node's facts against its target, one Result per check,
// in a fixed order.
func Evaluate(t Target, f Facts) []Result {
	j := &judge{t: t, f: f}
	n, c := t.Node, t.Cluster
	sd := j.readSeed()
	ok := f["hostname"] == n.Hostname
	j.add("hostname", ok, "%s, want %s%s", orNothing(f["hostname"]), n.Hostname, because(ok, sd.cause(sd.hostname)))
	j.manifest()
	want := strings.Fields(t.HostKey)
	got := strings.Fields(f["hostkey"])
	same := len(want) > 1 && len(got) > 1 && got[1] == want[1]
	j.add("host key", same, "/etc/ssh/ssh_host_ed25519_key.pub %s the baked key", pick(same, "is", "is not"))
	j.add("system", f["system"] == "running", "systemctl is-system-running: %s, want running", orNothing(f["system"]))
	var failed []string
	for _, l := range lines(f["failed"]) {
		failed = append(failed, strings.Fields(l)[0])
	}
	j.add("failed units", len(failed) == 0, "%s", orNone(strings.Join(failed, " ")))
	j.firstBoot()
	j.accounts(sd)
	if n.Role == profile.RoleHead {
		j.head()
	} else {
		j.worker()
	}
	if c.WiFi != nil {
		j.wifi()
	}
	j.settings()
	j.files()
	// What the node printed may hold a secret anywhere (a cloud-init error
	// quoting user-data, a link target): masked as diff masks it, and kept
	// from acting on a terminal.
	for i := range j.out {
		j.out[i].Detail = termtext.Line(t.Plan.Secrets.String(j.out[i].Detail))
	}
	return j.out
}

func (j *judge) manifest() {
	m, err := manifest.Parse([]byte(j.f["manifest"]))
	switch {
	case j.f["manifest"] == "":
		j.add("manifest", false, "no %s: not a card baked by magibake", manifest.Path)
	case err != nil:
		j.add("manifest", false, "%v", err)
	default:
		j.add("manifest", m.Node == j.t.Node.Hostname, "%s baked by %s %s for %s", manifest.Path, m.Tool, m.Version, orNothing(m.Node))
	}
}

// seed is what the boot partition's cloud-init user-data sets that makes the
// node another one than its profile (SeedKeys' lines, by the check each
// breaks), and whether that file is still the card's.
type seed struct {
	applies                bool // cloud-init is installed and reads it
	read                   bool // SeedKeys' output ended as it does
	users, hosts, hostname []string
	rewritten              bool // the file differs from the plan
}

// falseWords are YAML 1.1's false values, as cloud-init's PyYAML reads them
// (compared without case).
var falseWords = []string{"false", "no", "off"}

// readSeed reads the seed section; a zero seed when cloud-init does not
// read one (Bookworm) or did not answer.
func (j *judge) readSeed() seed {
	var s seed
	if ci := j.f["cloud-init"]; ci == "" || ci == "not installed" {
		return s
	}
	s.applies = true
	for _, l := range lines(j.f["seed"]) {
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimSpace(v)
		switch {
		case l == "#read":
			s.read = true
		case strings.HasPrefix(l, "user "):
			s.users = append(s.users, l)
		case k == "manage_etc_hosts" && !slices.Contains(falseWords, strings.ToLower(v)):
			s.hosts = append(s.hosts, l)
		case k == "hostname" || k == "fqdn":
			s.hostname = append(s.hostname, l)
		}
	}
	live := LiveFiles(j.f["files"])
	for _, op := range j.t.Plan.Final() {
		if w, ok := live[LivePath(op)]; ok && op.Partition == plan.Boot && op.Path == "/user-data" {
			s.rewritten = FileProblem(op, w, j.t.Plan.Secrets) != ""
		}
	}
	return s
}

// cause says where keys come from and what to do, or "" without keys: a
// user-data that is not the card's any more is what Raspberry Pi Imager's
// OS customisation writes.
func (s seed) cause(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	if s.rewritten {
		return fmt.Sprintf("%s/user-data is not the card's and sets %s, as Raspberry Pi Imager's OS customisation writes it; cloud-init applies it at the first boot. Reflash the card without customisation",
			BootMount, strings.Join(keys, ", "))
	}
	return fmt.Sprintf("%s/user-data as baked (an overlay's) sets %s; cloud-init applies it at the first boot", BootMount, strings.Join(keys, ", "))
}

// because is "; cause: CAUSE" for a failed check when there is a cause.
func because(ok bool, cause string) string {
	if ok || cause == "" {
		return ""
	}
	return "; cause: " + cause
}

// accounts checks the node's login users and /etc/hosts, which the OS's
// first boot (cloud-init's users and manage_etc_hosts) can change, and the
// cloud-init seed that would change them. Any login account (uid
// 1000-60000) besides the profile's fails.
func (j *judge) accounts(s seed) {
	f, u := j.f, j.t.Cluster.User.Name
	users := strings.Join(lines(f["users"]), " ")
	ok := users == u+":1000"
	j.add("users", ok, "login users %s, want only %s:1000%s", orNone(users), u, because(ok, s.cause(s.users)))
	ok = f["hosts-writer"] != "cloud-init"
	j.add("hosts", ok, "/etc/hosts %s%s", pick(ok, "not written from cloud-init's template", "written from cloud-init's template (manage_etc_hosts)"), because(ok, s.cause(s.hosts)))
	if !s.applies {
		return
	}
	if !s.read {
		j.add("cloud-init seed", false, "cannot tell what %s/user-data sets: %s", BootMount, orNothing(strings.Join(lines(f["seed"]), "; ")))
		return
	}
	all := s.cause(slices.Concat(s.hostname, s.users, s.hosts))
	j.add("cloud-init seed", all == "", "%s", pick(all == "", BootMount+"/user-data sets no hostname, users or manage_etc_hosts", all))
}

func (j *judge) firstBoot() {
	f := j.f
	ci := f["cloud-init"]
	switch {
	case strings.TrimSpace(f["cmdline"]) == "":
		j.add("first boot", false, "%s/cmdline.txt could not be read: cannot tell whether the first boot ran", BootMount)
	case ci == "not installed":
		var inits []string
		for _, w := range strings.Fields(f["cmdline"]) {
			if strings.HasPrefix(w, "init=") {
				inits = append(inits, w)
			}
		}
		j.add("first boot", len(inits) == 0, "cmdline.txt %s", pick(len(inits) == 0, "has no init= left by the first boot", "still starts the first-boot init: "+strings.Join(inits, " ")))
	default:
		// cloud-init status --long: done, and no errors when it lists them.
		ok, shown := false, []string{}
		for _, l := range lines(ci) {
			k, v, _ := strings.Cut(l, ":")
			v = strings.TrimSpace(v)
			switch k {
			case "status":
				ok = v == "done"
				shown = append(shown, l)
			case "errors", "recoverable_errors":
				if v != "[]" && v != "{}" {
					ok = false
					shown = append(shown, l)
				}
			}
		}
		if len(shown) == 0 {
			shown = lines(ci)
		}
		j.add("first boot", ok, "cloud-init %s", strings.Join(shown, "; "))
	}
	// The first boot grows the root partition to the end of the card and
	// its file system with it.
	v := strings.Fields(f["disk"])
	ok := false
	detail := "cannot tell: " + orNothing(f["disk"])
	if len(v) == 4 {
		disk, _ := strconv.ParseInt(v[0], 10, 64)
		start, _ := strconv.ParseInt(v[1], 10, 64)
		size, _ := strconv.ParseInt(v[2], 10, 64)
		fsBytes, _ := strconv.ParseInt(v[3], 10, 64)
		end := (start + size) * 512
		// A file system a little smaller than its partition is normal.
		ok = disk > 0 && end == disk && fsBytes >= size*512*9/10
		detail = fmt.Sprintf("root partition ends at %d of %d bytes, file system %d bytes", end, disk, fsBytes)
	}
	j.add("root grown", ok, "%s", detail)
}

func (j *judge) head() {
	f, c := j.f, j.t.Cluster
	j.add("eth0", hasAddr(f["eth0"], c.Head.String()), "%s, want %s", orNothing(addrs(f["eth0"])), c.Head)
	j.add("cluster route", hasLine(f["routes"], func(l []string) bool {
		return len(l) > 2 && l[0] == c.Subnet.String() && field(l, "dev") == "eth0"
	}), "%s dev eth0", c.Subnet)
	defaults := routes(f["routes"], "default")
	j.add("default route", len(defaults) == 1 && field(strings.Fields(defaults[0]), "dev") == c.Uplink,
		"%s, want one, via %s", orNone(strings.Join(defaults, "; ")), c.Uplink)
	j.add("forwarding", f["forward"] == "1", "net.ipv4.ip_forward = %s, want 1", orNothing(f["forward"]))
	j.rules()
	j.add("dhcpd", f["dhcpd"] == "active", "isc-dhcp-server %s; %s", orNothing(f["dhcpd"]), leases(f["leases"]))
	j.add("cluster route unit", f["route-unit"] == "active", "magibake-cluster-route %s", orNothing(f["route-unit"]))
}

// rules checks that every rule of the planned iptables rules file is loaded
// exactly once, table by table.
func (j *judge) rules() {
	var planned string
	for _, op := range j.t.Plan.Final() {
		if op.Kind == plan.WriteFile && strings.HasSuffix(op.Path, "/iptables.rules") {
			planned = string(op.Content)
		}
	}
	if planned == "" {
		j.add("nat rules", false, "the plan has no iptables rules file")
		return
	}
	live := byTable(j.f["iptables"])
	for table, rules := range orderedTables(planned) {
		for _, r := range rules {
			n := 0
			for _, l := range live[table] {
				if l == r {
					n++
				}
			}
			j.add("rule", n == 1, "%s: %s: loaded %d time(s), want once", table, r, n)
		}
	}
}

type tableRules struct {
	table string
	rules []string
}

// orderedTables yields an iptables-restore file's -A rules by table, in
// file order.
func orderedTables(s string) func(func(string, []string) bool) {
	var out []tableRules
	for _, l := range lines(s) {
		switch {
		case strings.HasPrefix(l, "*"):
			out = append(out, tableRules{table: l[1:]})
		case strings.HasPrefix(l, "-A ") && len(out) > 0:
			out[len(out)-1].rules = append(out[len(out)-1].rules, strings.TrimSpace(l))
		}
	}
	return func(yield func(string, []string) bool) {
		for _, t := range out {
			if !yield(t.table, t.rules) {
				return
			}
		}
	}
}

func byTable(s string) map[string][]string {
	m := map[string][]string{}
	for t, r := range orderedTables(s) {
		m[t] = append(m[t], r...)
	}
	return m
}

func (j *judge) worker() {
	f, c, n := j.f, j.t.Cluster, j.t.Node
	head := c.Head.Addr()
	got := addrs(f["eth0"])
	if n.Address.IsValid() {
		want := netip.PrefixFrom(n.Address, c.Subnet.Bits()).String()
		j.add("eth0", hasAddr(f["eth0"], want), "%s, want the fixed address %s from %s", orNothing(got), want, j.t.Cluster.HeadNode().Hostname)
	} else {
		ok := false
		for _, a := range strings.Fields(got) {
			p, err := netip.ParsePrefix(a)
			ok = ok || (err == nil && p.Bits() == c.Subnet.Bits() && inRange(p.Addr(), c.DHCPStart, c.DHCPEnd))
		}
		j.add("eth0", ok, "%s, want a lease in %s-%s from %s", orNothing(got), c.DHCPStart, c.DHCPEnd, j.t.Cluster.HeadNode().Hostname)
	}
	defaults := routes(f["routes"], "default")
	j.add("default route", slices.ContainsFunc(defaults, func(l string) bool {
		w := strings.Fields(l)
		return field(w, "via") == head.String() && field(w, "dev") == "eth0"
	}), "%s, want one via %s dev eth0", orNone(strings.Join(defaults, "; ")), head)
	w := strings.Fields(firstLine(f["route-upstream"]))
	j.add("upstream route", field(w, "via") == head.String() && field(w, "dev") == "eth0",
		"%s goes %s, want via %s dev eth0 (through the head's NAT)", j.t.Upstream, orNothing(firstLine(f["route-upstream"])), head)
	for _, p := range []struct {
		name, fact string
		addr       netip.Addr
	}{{"ping head", "ping-head", head}, {"upstream", "ping-upstream", j.t.Upstream}} {
		ok := f[p.fact] == "ok"
		j.add(p.name, ok, "%s %s", p.addr, pick(ok, "answers", "does not answer"))
	}
}

func (j *judge) wifi() {
	f, c, n := j.f, j.t.Cluster, j.t.Node
	j.add("wifi radio", f["wifi-radio"] == "enabled", "NetworkManager's Wi-Fi radio %s", orNothing(f["wifi-radio"]))
	link := f["wifi-link"]
	joined := strings.HasPrefix(link, "Connected to") && slices.Contains(lines(link), "SSID: "+c.WiFi.SSID)
	j.add("wifi", joined && f["wifi-state"] == "100 (connected)", "%s: %s (NetworkManager: %s)", c.Uplink,
		pick(joined, "joined the home network", "not joined to the home network: "+strings.Join(lines(link), "; ")), orNothing(f["wifi-state"]))
	got := addrs(f["uplink"])
	ok := got != ""
	want := "an address"
	if c.HomeNetwork.IsValid() {
		want = "an address in " + c.HomeNetwork.String()
		ok = false
		for _, a := range strings.Fields(got) {
			p, err := netip.ParsePrefix(a)
			ok = ok || (err == nil && c.HomeNetwork.Contains(p.Addr()))
		}
	}
	if a, err := netip.ParseAddr(n.Home); err == nil {
		want = a.String() + " (home_address)"
		ok = hasAddrOnly(got, a)
		if n.HomeStatic {
			// Fixed: that address and prefix, and no lease beside it.
			p := netip.PrefixFrom(a, c.HomeNetwork.Bits())
			want = "exactly " + p.String() + " (home_static)"
			ok = got == p.String()
		}
	}
	j.add("home address", ok, "%s %s, want %s", c.Uplink, orNothing(got), want)
	reg := ""
	for _, l := range lines(f["wifi-reg"]) {
		if strings.HasPrefix(l, "country ") {
			reg = l
			break
		}
	}
	j.add("regulatory domain", strings.HasPrefix(reg, "country "+c.WiFi.Country+":"), "%s, want country %s", orNothing(reg), c.WiFi.Country)
}

// LiveFiles indexes the script's files section by path: each entry's
// tab-separated words (kind, path, details).
func LiveFiles(s string) map[string][]string {
	live := map[string][]string{}
	for _, l := range lines(s) {
		if w := strings.Split(l, "\t"); len(w) >= 2 {
			live[w[1]] = w
		}
	}
	return live
}

// files judges every planned path against the node's, by content hash
// alone: no content is printed, so secrets stay secret.
func (j *judge) files() {
	live := LiveFiles(j.f["files"])
	good := 0
	for _, op := range j.t.Plan.Final() {
		p := LivePath(op)
		if op.Kind == plan.EditConfig {
			if missing := plan.ConfigMissing(j.f["config"], op.ConfigLines); len(missing) > 0 || j.f["config"] == "" {
				var ls []string
				for _, l := range missing {
					ls = append(ls, "["+l.Section+"] "+l.Line)
				}
				j.add("file", false, "%s: lacks %s", p, orNothing(strings.Join(ls, ", ")))
			} else {
				good++
			}
			continue
		}
		if op.Kind == plan.EditCmdline {
			notOne, unset, kept := compare.Cmdline(j.f["cmdline"]+"\n", op)
			reveal := func(words []string) []string {
				var out []string
				for _, w := range words {
					out = append(out, compare.Reveal(op, j.t.Plan.Secrets, w))
				}
				return out
			}
			switch {
			case notOne:
				j.add("file", false, "%s: not one line", p)
			case len(unset) > 0 || len(kept) > 0:
				j.add("file", false, "%s: words unset %q, words kept that the edit removes %q", p, reveal(unset), reveal(kept))
			default:
				good++
			}
			continue
		}
		if why, ok := consumed[op.Path]; ok && op.Partition == plan.Boot {
			if w := live[p]; len(w) > 0 && w[0] != "missing" {
				j.add("file", false, "%s is still there: the first boot has not consumed it (%s)", p, why)
			} else {
				good++
			}
			continue
		}
		if msg := FileProblem(op, live[p], j.t.Plan.Secrets); msg != "" {
			j.add("file", false, "%s: %s", p, msg)
		} else {
			good++
		}
	}
	j.add("baked files", good == len(j.t.Plan.Final()), "%d of %d planned paths as baked", good, len(j.t.Plan.Final()))
}

// FileProblem says how the node's entry w (the script's f output) differs
// from op, or "". The boot partition is FAT: its modes and owners are the
// mount's, not the card's, and are not compared.
func FileProblem(op plan.Op, w []string, secrets *redact.Secrets) string {
	kind := "missing"
	if len(w) > 0 {
		kind = w[0]
	}
	// A node's line for a path has its details in its third field: a line
	// cut short (a failing stat, a file gone meanwhile) says nothing more.
	if len(w) < 3 && (kind == "link" || kind == "dir" || kind == "file") {
		return "the node printed no details for this " + kind + " (" + strings.Join(w, " ") + ")"
	}
	root := op.Partition == plan.Root
	switch op.Kind {
	case plan.Remove:
		if kind != "missing" {
			return "still there, the plan removes it"
		}
		return ""
	case plan.Symlink:
		if kind != "link" {
			return "a " + kind + ", want a symlink to " + compare.Reveal(op, secrets, op.Target)
		}
		if w[2] != op.Target {
			return compare.TargetDiffers(op, secrets, w[2])
		}
		return ""
	case plan.Mkdir:
		if kind != "dir" {
			return "a " + kind + ", want a directory"
		}
		if root {
			return modeOwner(op, w)
		}
		return ""
	case plan.WriteFile:
		if kind != "file" {
			return "a " + kind + ", want a file"
		}
		if root {
			if msg := modeOwner(op, w); msg != "" {
				return msg
			}
		}
		f := strings.Fields(w[2])
		if len(f) < 4 {
			return "the node printed no sha256 for this file"
		}
		sum := sha256.Sum256(op.Content)
		if f[3] != hex.EncodeToString(sum[:]) {
			if op.Secret {
				return "content differs from the plan (a secret: not shown)"
			}
			return "content differs from the plan (sha256 " + f[3] + ", plan " + hex.EncodeToString(sum[:]) + ")"
		}
		return ""
	}
	return ""
}

func modeOwner(op plan.Op, w []string) string {
	f := strings.Fields(strings.Join(w[2:], " "))
	if len(f) < 3 {
		return "cannot read its mode and owner"
	}
	if want := unixPerm(op.Mode); f[0] != want {
		return "mode " + f[0] + ", want " + want
	}
	if want := fmt.Sprintf("%d:%d", op.UID, op.GID); f[1]+":"+f[2] != want {
		return "owner " + f[1] + ":" + f[2] + ", want " + want
	}
	return ""
}

// unixPerm renders m as stat's %a does: octal, set-id and sticky bits
// first, no leading zeros.
func unixPerm(m fs.FileMode) string {
	if v := strings.TrimLeft(plan.OctalMode(m), "0"); v != "" {
		return v
	}
	return "0"
}

// leases lists the active leases of a dhcpd.leases file: "ADDR (NAME)".
func leases(s string) string {
	type lease struct{ addr, state, name string }
	var all []lease
	var cur *lease
	for _, l := range lines(s) {
		w := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), ";"))
		switch {
		case len(w) >= 2 && w[0] == "lease":
			all = append(all, lease{addr: w[1]})
			cur = &all[len(all)-1]
		case cur == nil || len(w) < 2:
		case w[0] == "binding" && len(w) >= 3 && w[1] == "state":
			cur.state = w[2]
		case w[0] == "client-hostname":
			cur.name = strings.Trim(w[1], `"`)
		}
	}
	last := map[string]lease{} // a later entry for an address replaces an earlier one
	var order []string
	for _, l := range all {
		if _, ok := last[l.addr]; !ok {
			order = append(order, l.addr)
		}
		last[l.addr] = l
	}
	var out []string
	for _, a := range order {
		if l := last[a]; l.state == "active" {
			out = append(out, a+" ("+orNothing(l.name)+")")
		}
	}
	if len(out) == 0 {
		return "no active leases"
	}
	return "active leases: " + strings.Join(out, ", ")
}

func inRange(a, first, last netip.Addr) bool {
	return a.Compare(first) >= 0 && a.Compare(last) <= 0
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func firstLine(s string) string {
	if l := lines(s); len(l) > 0 {
		return l[0]
	}
	return ""
}

// addrs are the address/prefix words of `ip -4 -o addr show` output.
func addrs(s string) string {
	var out []string
	for _, l := range lines(s) {
		if a := field(strings.Fields(l), "inet"); a != "" {
			out = append(out, a)
		}
	}
	return strings.Join(out, " ")
}

func hasAddr(s, want string) bool { return slices.Contains(strings.Fields(addrs(s)), want) }

func hasAddrOnly(got string, a netip.Addr) bool {
	for _, w := range strings.Fields(got) {
		if p, err := netip.ParsePrefix(w); err == nil && p.Addr() == a {
			return true
		}
	}
	return false
}

// routes are the lines of `ip route show` output whose destination is dst.
func routes(s, dst string) []string {
	var out []string
	for _, l := range lines(s) {
		if strings.HasPrefix(l, dst+" ") {
			out = append(out, l)
		}
	}
	return out
}

func hasLine(s string, ok func([]string) bool) bool {
	for _, l := range lines(s) {
		if ok(strings.Fields(l)) {
			return true
		}
	}
	return false
}

// field is the word after key in w ("via" -> the gateway), or "".
func field(w []string, key string) string {
	for i := 0; i+1 < len(w); i++ {
		if w[i] == key {
			return w[i+1]
		}
	}
	return ""
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// pick is yes when ok, else no: the wording of a verdict.
func pick(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
