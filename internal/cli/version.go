package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print magibake's version",
		Example: "  magibake version",
		Args:    argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "magibake %s (%s, %s/%s)\n", toolVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

// addStandardCommands adds version and cobra's own completion and help
// commands, created here rather than lazily at Execute so that they too
// carry examples.
func addStandardCommands(root *cobra.Command) {
	root.AddCommand(newVersion())
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
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
