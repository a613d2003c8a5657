package plan

import "testing"

func TestApplyCmdline(t *testing.T) {
	const bookworm = "console=serial0,115200 console=tty1 root=PARTUUID=6c1e5a3b-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
	tests := []struct {
		name, in    string
		set, remove []string
		want        string
	}{
		{"append keeps firstboot", bookworm, []string{"cfg80211.ieee80211_regdom=GB"}, nil,
			"console=serial0,115200 console=tty1 root=PARTUUID=6c1e5a3b-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cfg80211.ieee80211_regdom=GB\n"},
		{"replace in place", "a=1 cfg80211.ieee80211_regdom=US b\n", []string{"cfg80211.ieee80211_regdom=GB"}, nil,
			"a=1 cfg80211.ieee80211_regdom=GB b\n"},
		{"remove by key", "quiet splash rootwait\n", nil, []string{"splash", "quiet"}, "rootwait\n"},
		{"multi-line base becomes one line", "a\nb\r\n\n", []string{"c"}, nil, "a b c\n"},
		{"duplicate key collapses", "x=1 y x=2\n", []string{"x=3"}, nil, "x=3 y\n"},
		{"console keys are all one key", "console=serial0,115200 console=tty1\n", nil, []string{"console"}, "\n"},
		{"idempotent", "a b=2\n", []string{"b=2"}, nil, "a b=2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ApplyCmdline(tt.in, tt.set, tt.remove); got != tt.want {
				t.Errorf("ApplyCmdline(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
