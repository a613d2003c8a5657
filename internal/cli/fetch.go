package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/fetch"
	"github.com/magibake/magibake/internal/profile"
)

// osListEnv overrides the OS list URL when --os-list is not given.
const osListEnv = "MAGIBAKE_OS_LIST"

// fetchOpts are fetch's flags beyond the profile sources.
type fetchOpts struct {
	url            string
	latest, legacy bool
	list           bool
	osList         string
}

func newFetch() *cobra.Command {
	var s build.Sources
	var o fetchOpts
	cmd := &cobra.Command{
		Use:   "fetch [--profiles DIR | --url URL | --latest [--legacy] | --list]",
		Short: "Download a base image into the cache and check its sha256",
		Long: `fetch downloads the image named by base.url in cluster.yaml into
$XDG_CACHE_HOME/magibake/bases (~/.cache/magibake/bases), resuming an
interrupted download, and checks it against base.sha256 before it is used;
a download with another sha256 is deleted. It prints the cached file's path.
build runs it by itself when --base is not given. A base.url without
base.sha256 is checked against URL.sha256 as --url does, and the line that
pins it is printed on stderr.

To find a base to pin, without copying a sha256 by hand:

--url URL fetches an image that is not pinned yet: it reads the sha256
published beside it (URL.sha256, as sha256sum writes it), checks the
download against it, prints the path on stdout and, on stderr, the
cluster.yaml line that pins it. A URL that redirects (a "latest" link) is
pinned as the file it leads to.

--latest reads Raspberry Pi Imager's OS list and fetches the current
"` + fetch.LiteName + `", checked against the list's
image_download_sha256, printing the path and the pin line the same way.
--legacy takes its Bookworm sibling, "` + fetch.LegacyLiteName + `".
--list prints the 64-bit Lite images the list offers (name, release date,
URL, sha256) and downloads nothing. The list is read from
` + fetch.DefaultOSList + `
unless --os-list or $` + osListEnv + ` names another.`,
		Example: `  magibake fetch --profiles ~/cluster
  magibake build caspar --profiles ~/cluster        # fetches the pinned base when needed
  magibake build caspar --base "$(magibake fetch --profiles ~/cluster)"
  magibake fetch --latest              # the path, then the base: line for cluster.yaml on stderr
  magibake fetch --latest --legacy     # Bookworm
  magibake fetch --list
  magibake fetch --url ` + fetch.RecommendedURL,
		Args: argsRule(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			mode, err := o.mode(cmd)
			if err != nil {
				return fault.UsageError(err)
			}
			switch mode {
			case "url":
				return fetchURL(cmd, o.url)
			case "latest", "list":
				return fetchFromList(cmd, o)
			}
			c, err := s.Cluster()
			if err != nil {
				return fault.InputError(err)
			}
			if c.Base.URL == "" {
				return fault.InputError(errors.New("cluster.yaml pins no base image; " + fetch.PinHint))
			}
			p, err := fetchBase(cmd.Context(), cmd.ErrOrStderr(), c.Base)
			if err != nil {
				return fault.InputError(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), p)
			return nil
		},
	}
	sourceFlags(cmd, &s)
	cmd.Flags().StringVar(&o.url, "url", "", "fetch this image, checked against the sha256 published beside it (URL.sha256), and print its pin")
	cmd.Flags().BoolVar(&o.latest, "latest", false, "fetch the current Raspberry Pi OS Lite (64-bit) from Imager's OS list and print its pin")
	cmd.Flags().BoolVar(&o.legacy, "legacy", false, "with --latest: its Bookworm sibling, Raspberry Pi OS (Legacy, 64-bit) Lite")
	cmd.Flags().BoolVar(&o.list, "list", false, "print the 64-bit Lite images of Imager's OS list; download nothing")
	cmd.Flags().StringVar(&o.osList, "os-list", "", "OS list URL (default: $"+osListEnv+", else "+fetch.DefaultOSList+")")
	return cmd
}

// mode checks that the flags ask for one thing and says which: "url",
// "latest", "list", or "" for the profile's pin.
func (o fetchOpts) mode(cmd *cobra.Command) (string, error) {
	changed := cmd.Flags().Changed
	var modes []string
	for _, m := range []string{"url", "latest", "list"} {
		if changed(m) {
			modes = append(modes, "--"+m)
		}
	}
	switch {
	case len(modes) > 1:
		return "", fmt.Errorf("fetch: %s: give one of them", strings.Join(modes, " and "))
	case len(modes) == 1 && (changed("profiles") || changed("overlays")):
		return "", fmt.Errorf("fetch: %s takes no --profiles or --overlays: it does not read the profiles", modes[0])
	case o.legacy && !o.latest:
		return "", errors.New("fetch: --legacy goes with --latest")
	case changed("os-list") && !o.latest && !o.list:
		return "", errors.New("fetch: --os-list goes with --latest or --list")
	case len(modes) == 0:
		return "", nil
	}
	return strings.TrimPrefix(modes[0], "--"), nil
}

// fetchFromList is fetch --latest and --list: Imager's OS list, then the
// Lite image (or its Legacy sibling) into the cache, or the list printed.
func fetchFromList(cmd *cobra.Command, o fetchOpts) error {
	listURL := o.osList
	if listURL == "" {
		listURL = os.Getenv(osListEnv)
	}
	if listURL == "" {
		listURL = fetch.DefaultOSList
	}
	f, err := cacheFetcher(cmd.ErrOrStderr())
	if err != nil {
		return fault.InputError(err)
	}
	l, err := f.LoadOSList(cmd.Context(), listURL)
	if err != nil {
		return fault.InputError(err)
	}
	if o.list {
		return printLiteList(cmd.OutOrStdout(), l)
	}
	name := fetch.LiteName
	if o.legacy {
		name = fetch.LegacyLiteName
	}
	e, err := l.Find(name)
	if err != nil {
		return fault.InputError(err)
	}
	p, err := f.FetchEntry(cmd.Context(), l, e)
	if err != nil {
		return fault.InputError(err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), p)
	fmt.Fprintf(cmd.ErrOrStderr(), "%s, released %s\n", e.Name, orDash(e.ReleaseDate))
	printPin(cmd.ErrOrStderr(), e.URL, e.ImageDownloadSHA256)
	return nil
}

// printLiteList prints one row per 64-bit Lite image. An empty list is an
// error: the list's format has changed or it is not Imager's.
func printLiteList(w io.Writer, l *fetch.OSList) error {
	entries := l.LiteArm64()
	if len(entries) == 0 {
		return fault.InputError(fmt.Errorf("OS list %s has no 64-bit Lite image (%d images listed)", l.URL, len(l.Entries)))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tRELEASED\tURL\tSHA256")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Name, orDash(e.ReleaseDate), orDash(e.URL), orDash(e.ImageDownloadSHA256))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fetchURL is fetch --url: the image and its published sha256 into the
// cache, the path on stdout (for $(...)), the pin on stderr.
func fetchURL(cmd *cobra.Command, imageURL string) error {
	f, err := cacheFetcher(cmd.ErrOrStderr())
	if err != nil {
		return fault.InputError(err)
	}
	p, pinURL, sum, err := f.FetchPublished(cmd.Context(), imageURL)
	if err != nil {
		return fault.InputError(err)
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
		return "", fault.InputError(err)
	}
	return p, nil
}

// fetchBase returns the local path of the profile's base: a file:// URL as
// it is (build checks its sha256), anything else through the cache. A base
// without sha256 is checked against the .sha256 published beside its URL,
// which has to be read again on every run, so the line that pins it is
// printed on log each time.
func fetchBase(ctx context.Context, log io.Writer, b profile.Base) (string, error) {
	if u, err := url.Parse(b.URL); err == nil && u.Scheme == "file" {
		return u.Path, nil
	}
	f, err := cacheFetcher(log)
	if err != nil {
		return "", err
	}
	if b.SHA256 != "" {
		return f.Fetch(ctx, b.URL, b.SHA256)
	}
	p, pinURL, sum, err := f.FetchPublished(ctx, b.URL)
	if err != nil {
		return "", err
	}
	fmt.Fprintln(log, repinHint(pinURL, sum))
	return p, nil
}

// repinHint is the one line that tells how to pin a base fetched without a
// sha256: the profile already has a base: line, so it is to be replaced,
// and the pin line ends the hint so that it can be cut out as it is.
func repinHint(pinURL, sum string) string {
	return "base in cluster.yaml has no sha256; to pin it, replace its base: line with: " + fetch.PinLineFor(pinURL, sum)
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
