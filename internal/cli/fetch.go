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
	var imageURL string
	cmd := &cobra.Command{
		Use:   "fetch [--profiles DIR | --url URL]",
		Short: "Download a base image into the cache and check its sha256",
		Long: `fetch downloads the image named by base.url in cluster.yaml into
$XDG_CACHE_HOME/magibake/bases (~/.cache/magibake/bases), resuming an
interrupted download, and checks it against base.sha256 before it is used;
a download with another sha256 is deleted. It prints the cached file's path.
build runs it by itself when --base is not given.

--url URL fetches an image that is not pinned yet: it reads the sha256
published beside it (URL.sha256, as sha256sum writes it), checks the
download against it, prints the path on stdout and, on stderr, the
cluster.yaml line that pins it. A URL that redirects (a "latest" link) is
pinned as the file it leads to.`,
		Example: `  magibake fetch --profiles ~/cluster
  magibake build caspar --profiles ~/cluster        # fetches the pinned base when needed
  magibake build caspar --base "$(magibake fetch --profiles ~/cluster)"
  magibake fetch --url ` + fetch.RecommendedURL,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("url") {
				if cmd.Flags().Changed("profiles") || cmd.Flags().Changed("overlays") {
					return build.UsageError(errors.New("fetch: --url takes no --profiles or --overlays: it fetches the image the URL names"))
				}
				return fetchURL(cmd, imageURL)
			}
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
	cmd.Flags().StringVar(&imageURL, "url", "", "fetch this image, checked against the sha256 published beside it (URL.sha256), and print its pin")
	return cmd
}

// fetchURL is fetch --url: the image and its published sha256 into the
// cache, the path on stdout (for $(...)), the pin on stderr.
func fetchURL(cmd *cobra.Command, imageURL string) error {
	f, err := cacheFetcher(cmd.ErrOrStderr())
	if err != nil {
		return build.InputError(err)
	}
	p, pinURL, sum, err := f.FetchPublished(cmd.Context(), imageURL)
	if err != nil {
		return build.InputError(err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), p)
	printPin(cmd.ErrOrStderr(), pinURL, sum)
	return nil
}

// printPin tells how to keep what was just fetched: the exact cluster.yaml
// line, alone on its line so that it can be copied or grepped ("^base:").
func printPin(w io.Writer, pinURL, sum string) {
	fmt.Fprintf(w, "to pin this base, add to cluster.yaml:\n%s\n", fetch.PinLineFor(pinURL, sum))
}

// cacheFetcher is a Fetcher on the user cache that logs to log.
func cacheFetcher(log io.Writer) (*fetch.Fetcher, error) {
	dir, err := fetch.DefaultDir()
	if err != nil {
		return nil, err
	}
	return &fetch.Fetcher{Dir: dir, Log: log, Terminal: isTerminal(log)}, nil
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
	f, err := cacheFetcher(log)
	if err != nil {
		return "", err
	}
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
