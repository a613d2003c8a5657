// Package bytesize prints byte counts for people, the same way in every
// log line and report (build, fetch, the inspect command, bake's errors).
package bytesize

import "fmt"

// Format gives n in the largest binary unit it reaches, with one decimal:
// "1.9 GiB", "512.0 MiB", "4.0 KiB", "17 B".
func Format(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
