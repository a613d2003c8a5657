package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fetch"
	"github.com/magibake/magibake/internal/profile"
)

func newFetch() *cobra.Command {
	var s build.Sources
	cmd := &cobra.Command{
		Use:   "fetch [--profiles DIR]",
		Short: "Download the base image pinned in cluster.yaml into the cache and check its sha256",
		Long: `fetch downloads the image named by base.url in cluster.yaml into
$XDG_CACHE_HOME/magibake/bases (~/.cache/magibake/bases), resuming an
interrupted download, and checks it against base.sha256 before it is used;
a download with another sha256 is deleted. It prints the cached file's path.
build runs it by itself when --base is not given.`,
		Example: `  magibake fetch --profiles ~/cluster
  magibake build caspar --profiles ~/cluster        # fetches the pinned base when needed
  magibake build caspar --base "$(magibake fetch --profiles ~/cluster)"`,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := s.Cluster()
			if err != nil {
				return build.InputError(err)
			}
			if c.Base.URL == "" {
				return build.InputError(errors.New("cluster.yaml pins no base image; " + fetch.PinHint))
			}
			p, err := fetchBase(cmd.Context(), cmd.ErrOrStderr(), c.Base)
			if err != nil {
				return build.InputError(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), p)
			return nil
		},
	}
	sourceFlags(cmd, &s)
	return cmd
}

// pinnedBase returns the base build uses when --base is not given: the one
// cluster.yaml pins, fetched into the cache if need be. It returns "" (and
// build explains what to do) when there is no pin, and leaves problems with
// the profiles or node names to build, which reports them before any
// download starts.
func pinnedBase(ctx context.Context, log io.Writer, s build.Sources, nodes []string) (string, error) {
	c, err := s.Cluster()
	if err != nil || c.Base.URL == "" {
		return "", nil
	}
	for _, n := range nodes {
		if _, err := c.Node(n); err != nil {
			return "", nil
		}
	}
	p, err := fetchBase(ctx, log, c.Base)
	if err != nil {
		return "", build.InputError(err)
	}
	return p, nil
}

// fetchBase returns the local path of the pinned base: a file:// URL as it
// is (build checks its sha256), anything else through the cache.
func fetchBase(ctx context.Context, log io.Writer, b profile.Base) (string, error) {
	if u, err := url.Parse(b.URL); err == nil && u.Scheme == "file" {
		return u.Path, nil
	}
	dir, err := fetch.DefaultDir()
	if err != nil {
		return "", err
	}
	f := &fetch.Fetcher{Dir: dir, Log: log, Terminal: isTerminal(log)}
	return f.Fetch(ctx, b.URL, b.SHA256)
}

// isTerminal says whether w is a character device, so progress is redrawn
// in place only for a person watching, never into a log file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
