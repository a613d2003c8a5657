package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fault"
)

func newBuild() *cobra.Command {
	var o build.Options
	var noCache, all bool
	cmd := &cobra.Command{
		Use:   "build (NODE... | --all) [-o FILE | --out-dir DIR] [--base PATH]",
		Short: "Bake the card image of one or more nodes",
		Example: `  magibake build caspar -o caspar.img --base 2026-10-06-raspios-trixie-arm64-lite.img.xz
  magibake build caspar balthasar melchior --out-dir cards --base raspios.img.xz
  magibake build caspar --profiles ~/cluster    # base: the one cluster.yaml pins, fetched and cached
  magibake build --all --out-dir cards --profiles ~/cluster`,
		Args:              argsRule(cobra.ArbitraryArgs),
		ValidArgsFunction: completeNodes(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case all && len(args) > 0:
				return fault.UsageError(fmt.Errorf("%s: give node names or --all, not both", cmd.CommandPath()))
			case all:
				c, err := o.Sources.Cluster()
				if err != nil {
					return fault.InputError(err)
				}
				for _, n := range c.Nodes {
					args = append(args, n.Hostname)
				}
			case len(args) == 0:
				return fault.UsageError(fmt.Errorf("%s: no node given: name one or more nodes of the profiles, or --all", cmd.CommandPath()))
			}
			o.Nodes, o.Version, o.Log = args, toolVersion(), cmd.ErrOrStderr()
			o.Progress = progressBars(cmd.ErrOrStderr())
			warnSecretFiles(cmd.ErrOrStderr(), o.Sources)
			if c, err := o.Sources.Cluster(); err == nil {
				warnNoWiFi(cmd.ErrOrStderr(), o.Sources, c)
			}
			if o.Output == "" && o.OutDir == "" {
				o.OutDir = "."
			}
			if o.Base == "" {
				base, err := pinnedBase(cmd.Context(), cmd.ErrOrStderr(), o.Sources, o.Nodes)
				if err != nil {
					return err
				}
				o.Base = base
			}
			if !noCache {
				if dir, err := os.UserCacheDir(); err == nil {
					o.CacheDir = filepath.Join(dir, "magibake", "decompressed")
				}
			}
			return build.Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "", "the card file for a single node: NODE.img (raw), NODE.img.xz or NODE.img.zst")
	f.StringVar(&o.OutDir, "out-dir", "", "directory for NODE.img files (default: the current directory)")
	f.StringVar(&o.Base, "base", "", "Raspberry Pi OS Lite image, .img or .img.xz (read only; default: the base cluster.yaml pins, fetched)")
	f.BoolVar(&all, "all", false, "every node of the profiles (head first, then the workers)")
	f.BoolVar(&noCache, "no-cache", false, "decompress an .img.xz base beside the output instead of using (and filling) the cache of decompressed bases in the user cache dir")
	sourceFlags(cmd, &o.Sources)
	return cmd
}

func sourceFlags(cmd *cobra.Command, s *build.Sources) {
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	cmd.Flags().StringVar(&s.Overlays, "overlays", "", "extra overlay directory layered over the embedded overlays")
}
