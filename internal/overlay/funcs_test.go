package overlay

import "testing"

func TestWPAPSK(t *testing.T) {
	tests := []struct{ ssid, pass, want string }{
		// IEEE 802.11i-2004 Annex H.4 test vectors.
		{"IEEE", "password", "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"},
		{"ThisIsASSID", "ThisIsAPassword", "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"},
		{"x", "F42C6FC52DF0EBEF9EBB4B90B38A5F902E83FE1B135A70E23AED762E9710A12E", "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"},
	}
	for _, tt := range tests {
		got, err := wpaPSK(tt.ssid, tt.pass)
		if err != nil || got != tt.want {
			t.Errorf("wpaPSK(%q, %q) = %s, %v; want %s", tt.ssid, tt.pass, got, err, tt.want)
		}
	}
}

func TestKeyfileSSID(t *testing.T) {
	tests := map[string]string{
		"home-wifi":  "home-wifi",
		"Café":       "67;97;102;195;169;",
		"a;b":        "97;59;98;",
		" lead":      "32;108;101;97;100;",
		"1234":       "49;50;51;52;",
		"My Network": "My Network",
	}
	for in, want := range tests {
		if got := keyfileSSID(in); got != want {
			t.Errorf("keyfileSSID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStableUUID(t *testing.T) {
	a, b := stableUUID("caspar", "wifi"), stableUUID("caspar", "wifi")
	if a != b || a == stableUUID("balthasar", "wifi") || len(a) != 36 || a[14] != '5' {
		t.Errorf("stableUUID: %s %s", a, b)
	}
}
