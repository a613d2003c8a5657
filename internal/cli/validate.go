package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/overlay"
	"github.com/magibake/magibake/internal/profile"
)

func newValidate() *cobra.Command {
	var s build.Sources
	cmd := &cobra.Command{
		Use:   "validate [--profiles DIR] [--overlays DIR]",
		Short: "Check every profile and render every overlay for every node, listing all problems",
		Long: `validate loads the profiles (cluster.yaml and one file per node) and renders
every overlay file for every node, without touching any image. Each problem
is printed on stdout as FILE:LINE: MESSAGE; the exit code is 3 when there is
any. Secrets referenced with {env: ...} or {file: ...} must be available,
as for build.`,
		Example: `  magibake validate
  magibake validate --profiles ~/cluster --overlays ~/cluster/overlays`,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var problems []string
			c, err := s.Cluster()
			if err != nil {
				problems = append(problems, strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")...)
			}
			trees, err := s.Trees()
			if err != nil {
				problems = append(problems, err.Error())
			}
			if c != nil && trees != nil {
				for _, e := range overlay.Validate(c, trees) {
					problems = append(problems, e.Error())
				}
			}
			for _, p := range problems {
				fmt.Fprintln(out, p)
			}
			warnUnpinnedBase(cmd.ErrOrStderr(), s, c)
			warnNoWiFi(cmd.ErrOrStderr(), s, c)
			if len(problems) > 0 {
				if c == nil && trees != nil {
					return fault.InputError(fmt.Errorf("%d problem(s); the overlays were not rendered because the profiles do not load", len(problems)))
				}
				return fault.InputError(fmt.Errorf("%d problem(s)", len(problems)))
			}
			fmt.Fprintf(out, "ok: %d nodes (%s), every overlay file renders for each\n", len(c.Nodes), nodeNames(c.Nodes))
			return nil
		},
	}
	sourceFlags(cmd, &s)
	return cmd
}

func nodeNames(nodes []profile.Node) string {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Hostname
	}
	return strings.Join(names, ", ")
}
