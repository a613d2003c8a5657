package cli

import (
	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/plan"
)

func newPlan() *cobra.Command {
	var (
		s   build.Sources
		opt plan.PrintOptions
	)
	cmd := &cobra.Command{
		Use:   "plan NODE",
		Short: "Print what build would write for a node, without touching any image",
		Example: `  magibake plan caspar
  magibake plan caspar --content                  # every file's text, secrets masked
  magibake plan melchior --profiles ~/cluster --overlays ~/cluster/overlays`,
		Args:              argsRule(cobra.ExactArgs(1)),
		ValidArgsFunction: completeNodes(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			warnSecretFiles(cmd.ErrOrStderr(), s)
			mtime, err := build.MTime(nil)
			if err != nil {
				return fault.InputError(err)
			}
			s.Log = cmd.ErrOrStderr()
			p, _, err := s.Plan(args[0], mtime)
			if err != nil {
				return fault.InputError(err)
			}
			return plan.Print(cmd.OutOrStdout(), p, opt)
		},
	}
	cmd.Flags().BoolVar(&opt.Content, "content", false, "also print the rendered text of every file")
	cmd.Flags().BoolVar(&opt.ShowSecrets, "show-secrets", false, "print secret content instead of masking it")
	sourceFlags(cmd, &s)
	return cmd
}
