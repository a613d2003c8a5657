package plan

import "strings"

// ApplyCmdline applies an EditCmdline operation to the text of cmdline.txt and
// returns the new, single-line text (with a trailing newline). Words are
// matched by key, the text before '=' ("quiet" has key "quiet"); the order of
// the words the base already has is kept, so first-boot words such as
// init=/usr/lib/raspberrypi-sys-mods/firstboot survive unless removed.
func ApplyCmdline(text string, set, remove []string) string {
	words := strings.Fields(text) // joins a multi-line file back into one line
	drop := map[string]bool{}
	for _, r := range remove {
		drop[wordKey(r)] = true
	}
	out := words[:0]
	for _, w := range words {
		if !drop[wordKey(w)] {
			out = append(out, w)
		}
	}
	for _, s := range set {
		k := wordKey(s)
		replaced := false
		for i, w := range out {
			if wordKey(w) == k {
				if !replaced {
					out[i] = s
					replaced = true
				} else {
					out[i] = "" // a key given twice in the base keeps one word
				}
			}
		}
		if !replaced {
			out = append(out, s)
		}
	}
	kept := out[:0]
	for _, w := range out {
		if w != "" {
			kept = append(kept, w)
		}
	}
	return strings.Join(kept, " ") + "\n"
}

func wordKey(w string) string {
	k, _, _ := strings.Cut(w, "=")
	return k
}
