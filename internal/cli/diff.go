package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/inspect"
)

func newDiff() *cobra.Command {
	var (
		s      build.Sources
		node   string
		asJSON bool
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "diff IMG --node NODE",
		Short: "Show what re-baking a card with today's profiles and overlays would change",
		Long: `diff renders today's plan for NODE and compares each planned path with the
card image: its content (sha256), symlink target, mode and owner. It lists
what a re-bake would add, change or delete, and the files the card's
manifest records that today's plan no longer writes. The image is not
changed.`,
		Example: `  magibake diff caspar.img --node caspar
  magibake diff cards/melchior.img --node melchior --profiles ~/cluster --all
  magibake diff caspar.img --node caspar --json`,
		Args: argsRule(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Log = cmd.ErrOrStderr()
			if node == "" {
				return fault.UsageError(fmt.Errorf("%s: --node NODE is required", cmd.CommandPath()))
			}
			mtime, err := build.MTime(nil)
			if err != nil {
				return fault.InputError(err)
			}
			p, _, err := s.Plan(node, mtime)
			if err != nil {
				return fault.InputError(err)
			}
			im, err := inspect.Open(cmd.Context(), args[0], os.TempDir())
			if err != nil {
				return fault.InputError(err)
			}
			defer im.Close()
			changes, err := im.Diff(p)
			if err != nil {
				return fault.InputError(err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(changes)
			}
			counts := map[inspect.Status]int{}
			for _, c := range changes {
				counts[c.Status]++
				if c.Status == inspect.Same && !all {
					continue
				}
				line := fmt.Sprintf("%-7s %-4s %-7s %s", c.Status, c.Partition, c.Kind, c.Path)
				if c.Detail != "" {
					line += "  (" + c.Detail + ")"
				}
				fmt.Fprintln(out, line)
			}
			fmt.Fprintf(out, "%s vs today's plan for %s: %d to add, %d to change, %d to delete, %d dropped from the plan, %d the same\n",
				args[0], node, counts[inspect.Add], counts[inspect.Changed], counts[inspect.Delete], counts[inspect.Dropped], counts[inspect.Same])
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node whose plan to compare with (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print every path compared as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "also list the paths that would stay the same")
	sourceFlags(cmd, &s)
	return cmd
}
