// Package cli holds the cobra commands; each parses flags and calls one function.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Version is the tool version, set at link time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// NewRoot builds the magibake command tree.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "magibake",
		Short: "Bake ready-to-flash Raspberry Pi OS cards for a small cluster",
		Long: `magibake bakes ready-to-flash Raspberry Pi OS SD card images, one per node of a
cluster, from the official Raspberry Pi OS Lite image and a set of profiles.
Reinstalling a node means reflashing its card.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newBuild(), newPlan())
	return root
}

// Execute runs the root command and returns the process exit code: 0 on
// success, 1 for errors, 2 for command-line usage errors.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "magibake: interrupted; no output was written")
		return 130
	}
	fmt.Fprintf(stderr, "magibake: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// exactArgs is cobra.ExactArgs with errors marked as usage errors.
func argsRule(rule cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := rule(cmd, args); err != nil {
			return usageError{fmt.Errorf("%s: %w", cmd.CommandPath(), err)}
		}
		return nil
	}
}
