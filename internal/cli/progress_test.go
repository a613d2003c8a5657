package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestBarsFirstFrame: a phase whose first update already moved bytes
// starts its bar at zero, so no frame divides those bytes by the
// microseconds since the bar was made.
func TestBarsFirstFrame(t *testing.T) {
	for _, tc := range []struct {
		what    string
		counted bool
		want    string
	}{
		{"verify", true, "verify   0% |                              |"},
		{"flash", false, "flash   0% |                              |"},
	} {
		var out bytes.Buffer
		update, end := drawBars(&out, func(string) bool { return tc.counted })(tc.what)
		update(12<<20, 1200<<20)
		update(24<<20, 1200<<20)
		end()
		frames := strings.FieldsFunc(out.String(), func(r rune) bool { return r == '\r' })
		if len(frames) == 0 || !strings.HasPrefix(frames[0], tc.want) {
			t.Errorf("%s: first frame %q, want it to start %q (all: %q)", tc.what, frames, tc.want, out.String())
		}
		if !tc.counted && strings.Contains(out.String(), "B/s") {
			t.Errorf("%s: a phase that skips what it does not write shows a byte rate: %q", tc.what, out.String())
		}
	}
}
