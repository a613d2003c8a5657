package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/bytesize"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/flash"
	"github.com/magibake/magibake/internal/inspect"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/termtext"
)

func newFlash() *cobra.Command {
	var yes, force bool
	cmd := &cobra.Command{
		Use:   "flash CARD DEVICE [--yes] [--force]",
		Short: "Write a card image onto an SD card or USB drive and verify it",
		Long: `flash writes a card image (.img, .img.xz or .img.zst) onto DEVICE, a whole
block device such as /dev/sdb or /dev/mmcblk0, reads back everything it wrote
and compares it, then syncs. Only the card's data is written: the device is
discarded first and the card's zero runs are skipped when the discarded
device reads back zero; otherwise they are written too.

flash refuses a partition, a device that is mounted or used as swap (any of
its partitions, also through LVM or LUKS), the running system's disk, a
device smaller than the card, and one that is not removable, USB or SD/MMC
unless --force. It shows the device and asks for the card's node name (or
the device's name) before writing, unless --yes. Interrupted, it stops,
syncs and says so: the device is then incomplete and must be flashed again.`,
		Example: `  magibake flash caspar.img /dev/sdb
  magibake flash balthasar.img.xz /dev/mmcblk0
  magibake flash melchior.img.zst /dev/sdc --yes    # no questions: for scripts`,
		Args: argsRule(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFlash(cmd, flash.Host{}, args[0], args[1], yes, force)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask before writing (the safety checks still run)")
	cmd.Flags().BoolVar(&force, "force", false, "write to a device that is not removable, USB or SD/MMC (a mounted or system disk is still refused)")
	return cmd
}

func runFlash(cmd *cobra.Command, host flash.Host, cardPath, dev string, yes, force bool) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	// The device first: nothing is decompressed or read from the card
	// before the device is known to be safe to write and not to hold the
	// card.
	target, err := host.Inspect(dev)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("device %s: %w", dev, pe.Err)
		}
		return fault.InputError(err)
	}
	if err := refusals(host, target, 0, force, flash.Reads(cardPath, os.TempDir())); err != nil {
		return err
	}
	card, err := flash.OpenCard(ctx, cardPath, os.TempDir())
	if err != nil {
		return fault.InputError(err)
	}
	defer card.Close()
	if err := refusals(host, target, card.Size, force, card.Reads()); err != nil {
		return err
	}
	if !yes {
		if err := confirm(ctx, cmd.InOrStdin(), stderr, card, target); err != nil {
			return err
		}
	}
	// The write passes over zero runs it does not write: its bar shows
	// how far through the card it is; the read-back counts bytes.
	show := bars(stderr, func(what string) bool { return what != "flash" })
	var update func(done, total int64)
	var end func()
	phase := ""
	o := flash.Options{}
	if show != nil {
		o.Progress = func(what string, done, total int64) {
			if what != phase {
				if end != nil {
					end()
				}
				phase = what
				update, end = show(what)
			}
			update(done, total)
		}
	}
	res, err := host.Write(ctx, card, target, force, o)
	if end != nil {
		end()
	}
	if err != nil {
		return fault.InputError(err)
	}
	how := fmt.Sprintf("zero runs skipped after a discard; %s of them sampled back as zero", bytesize.Format(res.Samples))
	if !res.Discarded {
		how = "zero runs written too: " + res.Why
	}
	fmt.Fprintf(cmd.OutOrStdout(), "flashed %s onto %s: %s of %s written (%s), read back and verified\n",
		cardPath, target.Path, bytesize.Format(res.Written), bytesize.Format(card.Size), how)
	return nil
}

// refusals is every reason not to write the card to t, as one error.
func refusals(host flash.Host, t *flash.Target, size int64, force bool, reads []flash.Read) error {
	problems, err := host.Problems(t, size, force, reads)
	if err != nil {
		return fault.InputError(fmt.Errorf("device %s: %w", t.Path, err))
	}
	if len(problems) > 0 {
		return fault.InputError(errors.New(strings.Join(problems, "\n")))
	}
	return nil
}

// confirm shows the device and asks the operator on the terminal in to
// type the card's node name or the device's name.
func confirm(ctx context.Context, in io.Reader, w io.Writer, card *flash.Card, t *flash.Target) error {
	if !isTTY(in) {
		return fault.UsageError(fmt.Errorf("not a terminal: pass --yes to flash %s without asking", t.Path))
	}
	model := t.Model
	if model == "" {
		model = "unknown model"
	}
	fmt.Fprintf(w, "device  %s: %s, %s\n", t.Path, model, bytesize.Format(t.Size))
	if len(t.Partitions) == 0 {
		// Loop devices and some card readers get no partition devices
		// from the kernel although the card in them has a table.
		switch n := tablePartitions(t.Path); {
		case n > 0:
			fmt.Fprintf(w, "        %d partition(s) in its partition table (none known to the kernel)\n", n)
		case n == 0:
			fmt.Fprintln(w, "        no partitions (its partition table is empty or absent)")
		default:
			fmt.Fprintln(w, "        no partitions known to the kernel")
		}
	}
	for _, p := range t.Partitions {
		fmt.Fprintf(w, "        %-12s %s\n", p.Name, bytesize.Format(p.Size))
	}
	node := cardNode(ctx, card)
	what := "no magibake manifest"
	if node != "" {
		what = "node " + node
	}
	fmt.Fprintf(w, "card    %s: %s, %s\n", card.Path, what, bytesize.Format(card.Size))
	names := []string{t.Name}
	if node != "" {
		names = []string{node, t.Name}
	}
	fmt.Fprintf(w, "Everything on %s will be lost. Type %s to flash it: ", t.Path, strings.Join(names, " or "))
	line, err := bufio.NewReader(in).ReadString('\n')
	answer := strings.TrimSpace(line)
	if err != nil && answer == "" {
		return fault.InputError(fmt.Errorf("no answer; nothing was written to %s", t.Path))
	}
	for _, n := range append(names, t.Path) {
		if answer == n {
			return nil
		}
	}
	return fault.InputError(fmt.Errorf("%q is not %s; nothing was written to %s", answer, strings.Join(names, " or "), t.Path))
}

// cardNode is the node the card was baked for, from its manifest; "" when
// it has none or cannot be read (flash writes any card image).
func cardNode(ctx context.Context, card *flash.Card) string {
	im, err := inspect.Open(ctx, card.Image, os.TempDir())
	if err != nil {
		return ""
	}
	defer im.Close()
	root, err := im.Root()
	if err != nil {
		return ""
	}
	data, err := root.ReadFile(manifest.Path)
	if err != nil {
		return ""
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return ""
	}
	// Typed back by the owner, and shown: text from the card, so nothing a
	// terminal would act on.
	return termtext.Line(m.Node)
}

// isTTY says whether r is a terminal (/dev/null, a character device too,
// is not).
func isTTY(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// tablePartitions counts the used entries of the MBR partition table at
// the start of the device (inspect's reading of it): -1 if it cannot be read.
func tablePartitions(dev string) int {
	f, err := os.Open(dev)
	if err != nil {
		return -1
	}
	defer f.Close()
	parts, err := inspect.Partitions(f)
	if err != nil {
		return -1
	}
	return len(parts)
}
