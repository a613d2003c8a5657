package fetch

// The release suggested when a profile pins no base: Raspberry Pi OS Lite
// (64-bit), Bookworm, 2025-05-13, the last Bookworm Lite release. The sha256
// is the one published beside the image (RecommendedURL + ".sha256"); the
// commit that added it says where it was checked.
const (
	RecommendedURL    = "https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2025-05-13/2025-05-13-raspios-bookworm-arm64-lite.img.xz"
	RecommendedSHA256 = "62d025b9bc7ca0e1facfec74ae56ac13978b6745c58177f081d39fbb8041ed45"
)

// PinLine is the cluster.yaml line that pins the recommended release.
const PinLine = "base: {url: " + RecommendedURL + ", sha256: " + RecommendedSHA256 + "}"

// PinHint tells, on one line, how to get a base when the profile pins none.
const PinHint = "add this line to cluster.yaml to pin Raspberry Pi OS Lite (64-bit) 2025-05-13 and let build download and check it: " +
	PinLine + "  (or download " + RecommendedURL + " and give it with --base FILE)"
