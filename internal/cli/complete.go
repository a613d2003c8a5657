package cli

import (
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/profile"
)

// completeNodes completes node names from the profiles (--profiles, else
// the embedded ones) without reading a secret, so it works in a shell
// where the Wi-Fi passphrase is not set. max is how many node arguments
// the command takes (0: any); a name already given is not offered again.
func completeNodes(max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if max > 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var fsys fs.FS = profile.DefaultFS()
		if dir, _ := cmd.Flags().GetString("profiles"); dir != "" {
			fsys = os.DirFS(dir)
		}
		given := map[string]bool{}
		for _, a := range args {
			given[a] = true
		}
		var out []cobra.Completion
		for _, n := range profile.NodeNames(fsys) {
			if !given[n] && strings.HasPrefix(n, toComplete) {
				out = append(out, n)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
