package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/profile"
)

func newKnownHosts() *cobra.Command {
	var s build.Sources
	cmd := &cobra.Command{
		Use:   "known-hosts",
		Short: "Print ~/.ssh/known_hosts lines for the nodes' baked SSH host keys",
		Long: `known-hosts prints one ~/.ssh/known_hosts line per node: its name, NAME.DOMAIN
and its fixed cluster address, with the SSH host key that every card baked for
that node carries. The keys live in the state directory beside the profiles
(PROFILES/.magibake/state, or ~/.local/state/magibake/state for the embedded
profiles; $MAGIBAKE_STATE overrides); the first build of a node makes its
key. Keep that directory: it is the nodes' identity across reflashes.
known-hosts only reads it: a node not built yet has no line, and stderr
names it.`,
		Example: `  magibake known-hosts >> ~/.ssh/known_hosts
  magibake known-hosts > ~/.ssh/known_hosts.magi    # the file magibake ssh-config pins
  magibake known-hosts --profiles ~/cluster`,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Log = cmd.ErrOrStderr()
			c, err := s.Cluster()
			if err != nil {
				return fault.InputError(err)
			}
			keys, missing, dir, err := savedHostKeys(s, c)
			if err != nil {
				return fault.InputError(err)
			}
			if len(missing) > 0 {
				fmt.Fprintf(s.Log, "note: no SSH host key yet for %s in %s: `magibake build` makes a node's key with its first card\n",
					strings.Join(missing, ", "), dir)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), hostkey.KnownHosts(c, keys))
			return err
		},
	}
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	return cmd
}

// savedHostKeys returns the host keys saved in the state directory, the
// nodes that have none yet and the directory; it writes nothing (the keys
// hostkey.Load makes in memory for the missing nodes are dropped).
func savedHostKeys(s build.Sources, c *profile.Cluster) (hostkey.Keys, []string, string, error) {
	keys, gen, err := s.HostKeys(c)
	if err != nil {
		return nil, nil, "", err
	}
	for _, n := range gen.Nodes() {
		delete(keys, n)
	}
	return keys, gen.Nodes(), gen.Dir(), nil
}
