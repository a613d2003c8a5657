package cli

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressBars returns build.Options.Progress for w: a bar per phase,
// redrawn in place, when w is a terminal; nil otherwise, so logs (CI)
// get only the one summary line each phase prints when it ends.
func progressBars(w io.Writer) func(what string) (func(done, total int64), func()) {
	if !isTerminal(w) {
		return nil
	}
	return func(what string) (func(done, total int64), func()) {
		var bar *progressbar.ProgressBar
		update := func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription(what),
					progressbar.OptionShowBytes(true),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionShowElapsedTimeOnFinish(),
					progressbar.OptionClearOnFinish(),
				)
			}
			bar.Set64(done)
		}
		end := func() {
			if bar != nil {
				bar.Finish()
			}
		}
		return update, end
	}
}
