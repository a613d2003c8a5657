package inventory

import (
	"fmt"
	"strings"

	"github.com/magibake/magibake/internal/profile"
)

// KnownHostsFile is where SSHConfig's blocks expect the nodes' host keys:
// a file of the cluster's own, so that `magibake known-hosts >` can write
// it whole, again after every new node, without touching ~/.ssh/known_hosts.
func KnownHostsFile(c *profile.Cluster) string {
	return "~/.ssh/known_hosts." + c.Name
}

// SSHConfig returns one ~/.ssh/config Host block per node: its name, its
// home address as HostName, the cluster's user, and the baked host key
// pinned: HostKeyAlias NAME looks the key up under the node's name in
// KnownHostsFile, which knownHosts (the command that prints it) fills, and
// StrictHostKeyChecking refuses any other key. OpenSSH cannot take a key
// inline, hence the file.
func SSHConfig(c *profile.Cluster, knownHosts string) []byte {
	var b strings.Builder
	file := KnownHostsFile(c)
	fmt.Fprintf(&b, "# The %s cluster, from its magibake profiles (magibake ssh-config).\n", c.Name)
	fmt.Fprintf(&b, "# Each node's baked SSH host key is pinned; save them first:\n#   %s > %s\n", knownHosts, file)
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "\nHost %s\n", n.Hostname)
		fmt.Fprintf(&b, "  HostName %s\n", n.Home)
		fmt.Fprintf(&b, "  User %s\n", c.User.Name)
		fmt.Fprintf(&b, "  HostKeyAlias %s\n", n.Hostname)
		fmt.Fprintf(&b, "  UserKnownHostsFile %s\n", file)
		// Only that file: not the system's known_hosts, a command or DNS.
		b.WriteString("  GlobalKnownHostsFile /dev/null\n")
		b.WriteString("  KnownHostsCommand none\n")
		b.WriteString("  VerifyHostKeyDNS no\n")
		b.WriteString("  StrictHostKeyChecking yes\n")
	}
	return []byte(b.String())
}
