package cli

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressBars returns build.Options.Progress for w: a bar per phase,
// redrawn in place, when w is a terminal; nil otherwise, so logs (CI)
// get only the one summary line each phase prints when it ends. The bars
// count bytes and show their rate.
func progressBars(w io.Writer) func(what string) (func(done, total int64), func()) {
	return bars(w, func(string) bool { return true })
}

// bars is progressBars where counted(what) says whether phase what
// advances by bytes it moves. A phase that does not (flash's write, which
// passes over the card's zero runs without writing them) shows only how
// far it is: a byte rate there would count bytes never written.
func bars(w io.Writer, counted func(what string) bool) func(what string) (func(done, total int64), func()) {
	if !isTerminal(w) {
		return nil
	}
	return drawBars(w, counted)
}

// drawBars is bars for any w, terminal or not.
func drawBars(w io.Writer, counted func(what string) bool) func(what string) (func(done, total int64), func()) {
	return func(what string) (func(done, total int64), func()) {
		var bar *progressbar.ProgressBar
		update := func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total,
					progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription(what),
					progressbar.OptionShowBytes(counted(what)),
					progressbar.OptionSetPredictTime(counted(what)),
					progressbar.OptionSetWidth(30),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionShowElapsedTimeOnFinish(),
					progressbar.OptionClearOnFinish(),
				)
				// The bar's clock starts at its first frame: drawn at
				// the phase's first update it showed the bytes of that
				// update over microseconds ("1% (229 GB/s)"). Drawn
				// blank first, the throttle holds the next frame back
				// 100 ms.
				bar.RenderBlank()
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
