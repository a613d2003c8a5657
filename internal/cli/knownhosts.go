package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/hostkey"
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
profiles; $MAGIBAKE_STATE overrides) and are generated on first use. Keep
that directory: it is the nodes' identity across reflashes.`,
		Example: `  magibake known-hosts >> ~/.ssh/known_hosts
  magibake known-hosts --profiles ~/cluster`,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Log = cmd.ErrOrStderr()
			c, err := s.Cluster()
			if err != nil {
				return build.InputError(err)
			}
			g, err := s.HostKeys(c)
			if err != nil {
				return build.InputError(err)
			}
			if err := build.SaveHostKeys(g, s.Log); err != nil {
				return build.InputError(err)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), hostkey.KnownHosts(c))
			return err
		},
	}
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	return cmd
}
