package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/fault"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print magibake's version",
		Example: "  magibake version",
		Args:    argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine())
			return nil
		},
	}
}

// versionLine is what version and --version print.
func versionLine() string {
	return fmt.Sprintf("magibake %s (%s, %s/%s)", toolVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// addStandardCommands adds version and cobra's own completion and help
// commands, created here rather than lazily at Execute so that they too
// carry examples.
func addStandardCommands(root *cobra.Command) {
	root.AddCommand(newVersion())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	// cobra's completion command answers an unknown shell with its help and
	// exit 0: a usage error here.
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
			c.Args = func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return fault.UsageError(fmt.Errorf("%s: unknown shell %q; want bash, zsh, fish or powershell", cmd.CommandPath(), args[0]))
				}
				return nil
			}
		}
	}
	examples := map[string]string{
		"help": "  magibake help build\n  magibake build --help",
		"completion": `  source <(magibake completion bash)
  magibake completion zsh > "${fpath[1]}/_magibake"
  magibake completion fish > ~/.config/fish/completions/magibake.fish`,
		"bash":       "  source <(magibake completion bash)\n  magibake completion bash > /etc/bash_completion.d/magibake",
		"zsh":        `  magibake completion zsh > "${fpath[1]}/_magibake"`,
		"fish":       "  magibake completion fish > ~/.config/fish/completions/magibake.fish",
		"powershell": "  magibake completion powershell | Out-String | Invoke-Expression",
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if ex, ok := examples[sub.Name()]; ok && sub.Example == "" {
				sub.Example = ex
			}
			walk(sub)
		}
	}
	walk(root)
}
