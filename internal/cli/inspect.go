package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/bytesize"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/inspect"
	"github.com/magibake/magibake/internal/termtext"
)

func newInspect() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect IMG [--json]",
		Short: "Show a card image's partitions, disk signature, OS release and baked manifest",
		Long: `inspect reads a card image (.img or .img.xz) without changing it and shows
its MBR partitions, disk signature, the OS release of the root filesystem
(/etc/os-release: bookworm, trixie) and, for a card magibake baked,
/etc/magibake/manifest.json: node, profile digest, base sha256 and every
file written with its sha256.`,
		Example: `  magibake inspect caspar.img
  magibake inspect 2026-10-06-raspios-trixie-arm64-lite.img.xz
  magibake inspect caspar.img --json | jq .manifest.profile_digest`,
		Args: argsRule(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			im, err := inspect.Open(cmd.Context(), args[0], os.TempDir())
			if err != nil {
				return fault.InputError(err)
			}
			defer im.Close()
			r, err := im.Report()
			if err != nil {
				return fault.InputError(err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printReport(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func printReport(w io.Writer, r *inspect.Report) {
	// Text read from the card, shown so that it cannot act on a terminal.
	l := termtext.Line
	fmt.Fprintf(w, "image           %s (%s, sha256 %s)\n", r.Path, bytesize.Format(r.Size), r.SHA256)
	fmt.Fprintf(w, "disk signature  %s\n", r.DiskSignature)
	fmt.Fprintln(w, "partitions")
	for _, p := range r.Partitions {
		boot := ""
		if p.Bootable {
			boot = "  bootable"
		}
		fmt.Fprintf(w, "  %d  %s %-12s start %10d  size %10d (%s)%s\n", p.Index, p.Type, p.TypeName, p.Start, p.Size, bytesize.Format(p.Size), boot)
	}
	if r.RootError != "" {
		fmt.Fprintf(w, "root filesystem not readable: %s\n", l(r.RootError))
		return
	}
	switch name := r.OSRelease["PRETTY_NAME"]; {
	case name != "":
		fmt.Fprintf(w, "os              %s\n", l(name))
	case r.OSRelease == nil:
		fmt.Fprintln(w, "os              unknown (no /etc/os-release)")
	default:
		fmt.Fprintf(w, "os              %s %s\n", l(r.OSRelease["NAME"]), l(r.Release))
	}
	m := r.Manifest
	if m == nil {
		fmt.Fprintln(w, "manifest        none (not baked by magibake)")
		return
	}
	fmt.Fprintf(w, "manifest        node %s of cluster %s, baked by %s %s\n", l(m.Node), l(orDash(m.Cluster)), l(m.Tool), l(m.Version))
	// Not when it was baked: a card holds no wall-clock time, so the same
	// inputs bake the same bytes.
	fmt.Fprintf(w, "file times      %s (the base's date, or SOURCE_DATE_EPOCH)\n", m.BakedAt.Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(w, "profile digest  %s\n", l(m.ProfileDigest))
	fmt.Fprintf(w, "base sha256     %s\n", l(m.BaseSHA256))
	fmt.Fprintf(w, "files           %d\n", len(m.Files))
	for _, f := range m.Files {
		detail := f.SHA256
		switch {
		case f.Secret:
			detail = "(secret: no hash recorded)"
		case f.Target != "":
			detail = "-> " + f.Target
		case detail == "":
			detail = "-"
		}
		fmt.Fprintf(w, "  %-4s %-7s %-4s %4s %5s  %s  %s\n", l(f.Partition), l(f.Kind), l(f.Mode), fmt.Sprint(f.UID), fmt.Sprint(f.GID), l(f.Path), l(detail))
	}
}
