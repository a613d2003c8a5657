package cli

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/inspect"
	"github.com/magibake/magibake/internal/termtext"
)

func newDiff() *cobra.Command {
	var (
		s      build.Sources
		node   string
		asJSON bool
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "diff CARD [--node NODE]",
		Short: "Show what re-baking a card with today's profiles and overlays would change",
		Long: `diff renders today's plan for the card's node (its manifest names it; --node
for a card without one) and compares each planned path with the card: its
content (sha256), symlink target, mode and owner. It lists what a re-bake
would add, change or delete, and the files the card's manifest records that
today's plan no longer writes. The card is not changed.

Exit codes as check's: 0 nothing differs, 4 something does.`,
		Example: `  magibake diff caspar.img
  magibake diff cards/melchior.img --profiles ~/cluster --all
  magibake diff caspar.img --json`,
		Args: argsRule(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Log = cmd.ErrOrStderr()
			mtime, err := build.MTime(nil)
			if err != nil {
				return fault.InputError(err)
			}
			im, err := inspect.Open(cmd.Context(), args[0], os.TempDir())
			if err != nil {
				return fault.InputError(err)
			}
			defer im.Close()
			m, err := im.Manifest()
			if err != nil {
				return fault.InputError(err)
			}
			switch {
			case node == "" && (m == nil || m.Node == ""):
				return fault.UsageError(fmt.Errorf("%s has no magibake manifest naming its node: give --node NODE", args[0]))
			case node == "":
				node = m.Node
			case m != nil && m.Node != "" && m.Node != node:
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s is %s's card (its manifest says so); comparing it with %s's plan as --node asks\n",
					args[0], termtext.Line(m.Node), node)
			}
			p, _, err := s.Plan(node, mtime)
			if err != nil {
				return fault.InputError(err)
			}
			changes, err := im.Diff(p)
			if err != nil {
				return fault.InputError(err)
			}
			counts := map[inspect.Status]int{}
			for _, c := range changes {
				counts[c.Status]++
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(changes); err != nil {
					return err
				}
			} else {
				for _, c := range changes {
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
			}
			if n := len(changes) - counts[inspect.Same]; n > 0 {
				return fault.Classed(fault.Findings, fmt.Errorf("%s differs from today's plan for %s in %d path(s)", args[0], node, n))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "the node whose plan to compare with (default: the node the card's manifest names)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print every path compared as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "also list the paths that would stay the same")
	sourceFlags(cmd, &s)
	return cmd
}
