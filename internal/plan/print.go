package plan

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// PrintOptions choose what Print shows.
type PrintOptions struct {
	Content     bool // show the text of every written file
	ShowSecrets bool // show secret content instead of masking it
}

// Print writes a human-readable listing of p: one line per operation, then
// with Content the text of each file. Secret content is masked unless asked:
// files marked secret are not shown, and any secret value anywhere else
// (a path, a link target, a command line word) is replaced by redact.Mask.
func Print(w io.Writer, p *Plan, opt PrintOptions) error {
	if opt.ShowSecrets || p.Secrets == nil {
		return printPlan(w, p, opt)
	}
	var b bytes.Buffer
	if err := printPlan(&b, p, opt); err != nil {
		return err
	}
	_, err := io.WriteString(w, p.Secrets.String(b.String()))
	return err
}

func printPlan(w io.Writer, p *Plan, opt PrintOptions) error {
	dated := "as the base image's root filesystem (its last write)"
	if !p.MTime.IsZero() {
		dated = p.MTime.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "plan for %s: %d operations, files dated %s\n\n", p.Node, len(p.Ops), dated)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PART\tKIND\tMODE\tOWNER\tSIZE\tPATH")
	for _, op := range p.Ops {
		mode, owner, size, detail := "-", "-", "-", ""
		switch op.Kind {
		case WriteFile:
			mode, owner, size = OctalMode(op.Mode), fmt.Sprintf("%d:%d", op.UID, op.GID), fmt.Sprint(len(op.Content))
			if op.Secret {
				detail = "  (secret)"
			}
		case Mkdir:
			mode, owner = OctalMode(op.Mode), fmt.Sprintf("%d:%d", op.UID, op.GID)
		case Symlink:
			owner, detail = fmt.Sprintf("%d:%d", op.UID, op.GID), " -> "+op.Target
		case EditCmdline:
			var words []string
			for _, s := range op.CmdlineSet {
				words = append(words, "+"+s)
			}
			for _, r := range op.CmdlineRemove {
				words = append(words, "-"+r)
			}
			detail = "  " + strings.Join(words, " ")
		case EditConfig:
			var lines []string
			for _, l := range op.ConfigLines {
				lines = append(lines, "["+l.Section+"] "+l.Line)
			}
			detail = "  " + strings.Join(lines, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s%s\n", op.Partition, op.Kind, mode, owner, size, op.Path, detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !opt.Content {
		return nil
	}
	for _, op := range p.Ops {
		if op.Kind != WriteFile {
			continue
		}
		fmt.Fprintf(w, "\n--- %s %s (%s %d:%d, %d bytes, from %s)\n", op.Partition, op.Path, OctalMode(op.Mode), op.UID, op.GID, len(op.Content), op.Source)
		switch {
		case op.Secret && !opt.ShowSecrets:
			fmt.Fprintln(w, "(secret content masked; --show-secrets shows it)")
		case len(op.Content) == 0:
			fmt.Fprintln(w, "(empty)")
		default:
			w.Write(op.Content)
			if op.Content[len(op.Content)-1] != '\n' {
				fmt.Fprintln(w, "\n(no newline at end of file)")
			}
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}
