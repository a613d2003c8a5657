// Package cli holds the cobra commands; each parses flags and calls one function.
package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
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
Reinstalling a node means reflashing its card.

Exit codes: 0 success, 1 internal error (a bug: please report it), 2 usage
error (arguments, flags), 3 bad input (profiles, overlays, base image, output
path, disk full or read-only), 130 interrupted (SIGINT/SIGTERM; nothing written).`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable only so that an unknown command is a typed usage error:
		// cobra's own "unknown command" error has no type to classify.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return build.UsageError(fmt.Errorf("unknown command %q for %q; see `magibake --help`", args[0], cmd.CommandPath()))
		},
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return build.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
	})
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newBuild(), newPlan(), newFetch(), newValidate(), newInspect(), newDiff(), newKnownHosts())
	addStandardCommands(root)
	return root
}

// Execute runs the root command and returns the process exit code, decided
// in this one place from the error's build.Class: 0 success, 1 internal
// error, 2 usage error, 3 bad input, 130 interrupted.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	switch build.ClassOf(err) {
	case build.Interrupted:
		fmt.Fprintln(stderr, "magibake: interrupted; no output was written")
		return 130
	case build.Usage:
		printErr(stderr, err)
		return 2
	case build.Input:
		printErr(stderr, err)
		return 3
	}
	printErr(stderr, err)
	return 1
}

// printErr prints one "magibake: " line per line of err: a profile with
// several problems reports each on its own line.
func printErr(w io.Writer, err error) {
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintf(w, "magibake: %s\n", line)
	}
}

// argsRule is a cobra positional-args rule whose errors are usage errors.
func argsRule(rule cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := rule(cmd, args); err != nil {
			return build.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
		}
		return nil
	}
}
