package compression

import "testing"

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Kind
	}{
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, XZ},
		{[]byte{0xfd, '7', 'z', 'X', 'Z'}, Raw}, // cut short: not xz
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0}, Zstd},
		{[]byte{0x1f, 0x8b, 8, 0}, Gzip},
		{[]byte{0xfa, 0xb8, 0, 0x10, 0x8e, 0xd0}, Raw}, // an MBR's boot code
		{nil, Raw},
	} {
		if got := Detect(tc.head); got != tc.want {
			t.Errorf("Detect(% x) = %v, want %v", tc.head, got, tc.want)
		}
	}
}
