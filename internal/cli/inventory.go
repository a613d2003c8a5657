package cli

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/inventory"
)

func newInventory() *cobra.Command {
	var s build.Sources
	format := inventory.YAML
	cmd := &cobra.Command{
		Use:   "inventory [--profiles DIR] [--format yaml|ini]",
		Short: "Print an Ansible inventory of the cluster",
		Long: `inventory prints an Ansible inventory of the cluster from the profiles: a group
named after the cluster (name in cluster.yaml) with the children head and
workers. Each node's ansible_host is its home address (home_address in its
file, else NAME.local), ansible_user the cluster's user; role, and where the
profiles fix them cluster_address and cluster_mac, are host variables. The
cluster group has cluster_subnet, cluster_head_address, cluster_domain and
cluster_uplink. It holds no secret: no passphrase, no password hash.
--format ini writes Ansible's INI inventory format instead of YAML.`,
		Example: `  magibake inventory > inventory.yaml && ansible -i inventory.yaml magi -m ping
  magibake inventory --format ini --profiles ~/cluster > hosts.ini`,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !slices.Contains(inventory.Formats(), format) {
				return fault.UsageError(fmt.Errorf("%s: --format %q: want one of %s", cmd.CommandPath(), format, strings.Join(inventory.Formats(), ", ")))
			}
			c, err := s.Cluster()
			if err != nil {
				return fault.InputError(err)
			}
			b, err := inventory.Ansible(c, format)
			if err != nil {
				return fault.InputError(fmt.Errorf("%s: %w", profilesName(s), err))
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	cmd.Flags().StringVar(&format, "format", format, "inventory format: "+strings.Join(inventory.Formats(), " or "))
	return cmd
}

func newSSHConfig() *cobra.Command {
	var s build.Sources
	cmd := &cobra.Command{
		Use:   "ssh-config [--profiles DIR]",
		Short: "Print ~/.ssh/config Host blocks for the nodes, pinning their baked host keys",
		Long: `ssh-config prints one ~/.ssh/config Host block per node: HostName is its home
address (home_address in its file, else NAME.local), User the cluster's user.
The node's baked SSH host key is pinned: HostKeyAlias NAME,
UserKnownHostsFile ~/.ssh/known_hosts.CLUSTER and StrictHostKeyChecking yes,
so ssh trusts only the key from that file, which ` + "`magibake known-hosts`" + `
writes (OpenSSH takes no key inline). A node with no saved host key yet
(state directory as for known-hosts) still gets its block, and stderr names
it: ssh refuses it until a build has made its key and the file has it.`,
		Example: `  magibake known-hosts > ~/.ssh/known_hosts.magi
  magibake ssh-config >> ~/.ssh/config
  ssh caspar`,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s.Cluster()
			if err != nil {
				return fault.InputError(err)
			}
			_, missing, dir, err := savedHostKeys(s, c)
			if err != nil {
				return fault.InputError(err)
			}
			if len(missing) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: no SSH host key yet for %s in %s: ssh refuses them until `magibake build` has made their keys and %s holds them\n",
					strings.Join(missing, ", "), dir, inventory.KnownHostsFile(c))
			}
			knownHosts := "magibake known-hosts"
			if s.Profiles != "" {
				knownHosts += " --profiles " + shellQuote(s.Profiles)
			}
			_, err = cmd.OutOrStdout().Write(inventory.SSHConfig(c, knownHosts))
			return err
		},
	}
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	return cmd
}

// profilesName names the profiles directory in messages.
func profilesName(s build.Sources) string {
	if s.Profiles == "" {
		return "profiles (embedded)"
	}
	return s.Profiles
}

var shellPlain = regexp.MustCompile(`^[A-Za-z0-9_./:@+=,-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it, for a command
// line printed as advice.
func shellQuote(s string) string {
	if shellPlain.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
