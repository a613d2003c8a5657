package cli

import (
	"strings"
	"testing"
)

// TestCompleteNodes: node names are completed from the profiles, embedded
// or --profiles, with no secret in the environment; a name already given is
// not offered again, and plan, which takes one node, offers none after it.
func TestCompleteNodes(t *testing.T) {
	for _, v := range []string{"MAGIBAKE_WIFI_SSID", "MAGIBAKE_WIFI_PASSPHRASE", "MAGIBAKE_WIFI_COUNTRY", "MAGIBAKE_USER", "MAGIBAKE_PASSWORD_HASH", "MAGIBAKE_SSH_KEYS"} {
		t.Setenv(v, "")
	}
	workers := workersProfile(t, map[string]string{"workers.yaml": "role: worker\ncount: 3\nhostname: node{n:02}\n"})
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"build", ""}, "balthasar caspar melchior"},
		{[]string{"build", "caspar", ""}, "balthasar melchior"},
		{[]string{"check", "m"}, "melchior"},
		{[]string{"plan", "c"}, "caspar"},
		{[]string{"plan", "caspar", ""}, ""},
		{[]string{"build", "--profiles", workers, ""}, "caspar node01 node02 node03"},
		{[]string{"plan", "--profiles", workers, "node0"}, "node01 node02 node03"},
	}
	for _, tc := range tests {
		code, out, errOut := execute(t, append([]string{"__complete"}, tc.args...)...)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		}
		if code != 0 || strings.Join(got, " ") != tc.want {
			t.Errorf("__complete %q: exit %d, got %q, want %q (stderr %q)", tc.args, code, strings.Join(got, " "), tc.want, errOut)
		}
	}
}
