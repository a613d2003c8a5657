// Package cli holds the cobra commands; each parses flags and calls one function.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/flash"
	"github.com/magibake/magibake/internal/output"
)

// Version is the release this binary was built as, set at link time for
// tagged releases (make build on a tag, the release workflow):
// -ldflags "-X github.com/magibake/magibake/internal/cli.Version=v1.2.3".
// Empty means: take it from the build information.
var Version = ""

// toolVersion is what `magibake version` and every manifest say: the
// link-time Version, else what Go recorded in the binary (the module version
// of `go install ...@v1.2.3`, or for a build from a checkout a pseudo-version
// naming the commit, "+dirty" when the tree had changes), else "dev".
func toolVersion() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	return versionFrom(bi)
}

// versionFrom picks the version out of a binary's build information.
func versionFrom(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	// Built without a module version (go run, or stamping off): the
	// revision, if Go recorded one.
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	return rev
}

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
path, disk full or read-only, a device flash refuses; apply: a cluster
address would move), 4 findings (a check failed, diff found differences,
apply: a node failed, was refused or did not answer), 130 interrupted
(SIGINT/SIGTERM; nothing written, except by flash, which says so).`,
		Version:       toolVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable only so that an unknown command is a typed usage error:
		// cobra's own "unknown command" error has no type to classify.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownCommand(cmd, args[0])
		},
	}
	// cobra suggests only within this distance, and its default of 2 is
	// set only on a path our Args rule does not take.
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fault.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
	})
	// --version says what `magibake version` says.
	root.SetVersionTemplate(versionLine() + "\n")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newBuild(), newPlan(), newFetch(), newValidate(), newInspect(), newDiff(), newKnownHosts(), newSSHConfig(), newInventory(), newFlash(), newCheck(), newApply())
	addStandardCommands(root)
	return root
}

// Execute runs the root command and returns the process exit code, decided
// in this one place from the error's fault.Class: 0 success, 1 internal
// error, 2 usage error, 3 bad input, 4 findings, 130 interrupted.
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, NewRoot(stdout, stderr), args, stderr)
}

// unknownCommand is the usage error for a command name root does not
// have, with cobra's suggestions.
func unknownCommand(root *cobra.Command, name string) error {
	if near := root.SuggestionsFor(name); len(near) > 0 {
		return fault.UsageError(fmt.Errorf("unknown command %q; did you mean %s? (see `magibake --help`)", name, strings.Join(near, " or ")))
	}
	return fault.UsageError(fmt.Errorf("unknown command %q; see `magibake --help`", name))
}

// run runs root with args and returns the exit code.
func run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(args)
	var err error
	// An unknown command is an error even with --help, which cobra would
	// answer with the root's help and exit 0.
	// (cobra adds its shell-completion request commands only when it runs.)
	if c, rest, ferr := root.Find(args); ferr == nil && c == root && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") &&
		rest[0] != cobra.ShellCompRequestCmd && rest[0] != cobra.ShellCompNoDescRequestCmd {
		err = unknownCommand(root, rest[0])
	} else {
		err = root.ExecuteContext(ctx)
	}
	if err == nil {
		return 0
	}
	switch fault.Of(err) {
	case fault.Interrupted:
		if errors.Is(err, output.ErrNotTakenBack) || errors.Is(err, flash.ErrIncomplete) {
			printErr(stderr, fmt.Errorf("interrupted: %w", err))
		} else {
			fmt.Fprintln(stderr, "magibake: interrupted; no output was written")
		}
		return 130
	case fault.Usage:
		printErr(stderr, err)
		return 2
	case fault.Input:
		printErr(stderr, err)
		return 3
	case fault.Findings:
		printErr(stderr, err)
		return 4
	}
	printErr(stderr, err)
	return 1
}

// printErr prints err one line per line (a profile with several problems
// reports each on its own line), each starting with the program's name
// once: "magibake: ..." or, for an error that names its command,
// "magibake build: ...".
func printErr(w io.Writer, err error) {
	for _, line := range strings.Split(strings.TrimRight(err.Error(), "\n"), "\n") {
		if strings.HasPrefix(line, "magibake ") {
			fmt.Fprintln(w, line)
			continue
		}
		fmt.Fprintf(w, "magibake: %s\n", line)
	}
}

// argsRule is a cobra positional-args rule whose errors are usage errors.
func argsRule(rule cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := rule(cmd, args); err != nil {
			return fault.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
		}
		return nil
	}
}
