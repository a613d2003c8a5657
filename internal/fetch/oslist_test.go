package fetch

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// osListJSON is shaped like Imager's os_list_imagingutility_v4.json: the
// desktop image at the top, the Lite images in the "Raspberry Pi OS
// (other)" category, vendors' images nested deeper, a category that only
// points at another list, and an entry with a size of the wrong type.
func osListJSON(liteURL, liteSum, legacyURL, legacySum string) string {
	return fmt.Sprintf(`{
  "imager": {"latest_version": "2.0.0", "url": "https://www.raspberrypi.com/software/"},
  "os_list": [
    {"name": "Raspberry Pi OS (64-bit)", "description": "A port of Debian Trixie with the Raspberry Pi Desktop",
     "url": "https://example.invalid/raspios_arm64/2026-10-06-raspios-trixie-arm64.img.xz",
     "extract_size": 6005194752, "extract_sha256": "%[5]s", "image_download_size": 1339179956,
     "image_download_sha256": "%[5]s", "release_date": "2026-10-06", "init_format": "cloudinit-rpi",
     "devices": ["pi5-64bit", "pi4-64bit"]},
    {"name": "Raspberry Pi OS (other)", "description": "Other Raspberry Pi OS based images",
     "subitems": [
       {"name": "Raspberry Pi OS Lite (64-bit)", "description": "A port of Debian Trixie with no desktop environment",
        "url": "%[1]s", "extract_size": 3078619136, "extract_sha256": "%[5]s",
        "image_download_size": 550466056, "image_download_sha256": "%[2]s", "release_date": "2026-10-06"},
       {"name": "Raspberry Pi OS Lite (32-bit)", "description": "A port of Debian Trixie with no desktop environment",
        "url": "https://example.invalid/raspios_lite_armhf/x.img.xz", "image_download_sha256": "%[5]s", "release_date": "2026-10-06"},
       {"name": "Raspberry Pi OS (Legacy, 64-bit)", "description": "A port of Debian Bookworm with security updates and desktop",
        "url": "https://example.invalid/raspios_oldstable_arm64/y.img.xz", "image_download_sha256": "%[5]s", "release_date": "2026-09-15"},
       {"name": "Raspberry Pi OS (Legacy, 64-bit) Lite", "description": "A port of Debian Bookworm with security updates and no desktop",
        "url": "%[3]s", "extract_size": 2759852032, "extract_sha256": "%[5]s",
        "image_download_size": 442245740, "image_download_sha256": "%[4]s", "release_date": "2026-09-15"}
     ]},
    {"name": "Other general-purpose OS", "subitems": [
      {"name": "Ubuntu", "subitems": [
        {"name": "Ubuntu Server 26.04 LTS (64-bit)", "url": "https://example.invalid/ubuntu.img.xz",
         "extract_size": "unknown", "image_download_sha256": 42, "release_date": "2026-04-23"}]}]},
    {"name": "Misc utility images", "subitems_url": "https://example.invalid/utils.json"},
    "not an entry"
  ]
}`, liteURL, liteSum, legacyURL, legacySum, strings.Repeat("c", 64))
}

func TestParseOSList(t *testing.T) {
	lite, legacy := strings.Repeat("a", 64), strings.Repeat("b", 64)
	good := osListJSON("https://h/lite.img.xz", strings.ToUpper(lite), "https://h/legacy.img.xz", legacy)
	deep := `{"os_list": [{"name": "a", "subitems": [{"name": "b", "subitems": [{"name": "c", "subitems": [
		{"name": "Raspberry Pi OS Lite (64-bit)", "url": "https://h/deep.img.xz", "image_download_sha256": "` + lite + `"}]}]}]}]}`
	tooDeep := strings.Repeat(`{"name": "x", "subitems": [`, maxOSListDepth+2) + strings.Repeat(`]}`, maxOSListDepth+2)
	tests := []struct {
		name, doc   string
		find        string
		wantURL     string
		wantSum     string
		wantErr     string // from parsing, or else from Find, or else from Check
		wantLiteArm []string
	}{
		{name: "Lite under Raspberry Pi OS (other)", doc: good, find: LiteName, wantURL: "https://h/lite.img.xz", wantSum: lite,
			wantLiteArm: []string{LiteName, LegacyLiteName}},
		{name: "Legacy Lite", doc: good, find: LegacyLiteName, wantURL: "https://h/legacy.img.xz", wantSum: legacy},
		{name: "three categories deep", doc: deep, find: LiteName, wantURL: "https://h/deep.img.xz", wantSum: lite, wantLiteArm: []string{LiteName}},
		{name: "no such entry", doc: `{"os_list": [{"name": "Raspberry Pi OS (64-bit)", "url": "https://h/d.img.xz"}]}`, find: LiteName,
			wantErr: `OS list {url} has no "Raspberry Pi OS Lite (64-bit)" entry (1 images listed)`},
		{name: "entry without image_download_sha256", doc: `{"os_list": [{"name": "Raspberry Pi OS Lite (64-bit)", "url": "https://h/l.img.xz", "extract_sha256": "` + lite + `"}]}`,
			find: LiteName, wantErr: `OS list entry "Raspberry Pi OS Lite (64-bit)": image_download_sha256 "" is not 64 hex digits`},
		{name: "entry with an ftp url", doc: `{"os_list": [{"name": "Raspberry Pi OS Lite (64-bit)", "url": "ftp://h/l.img.xz", "image_download_sha256": "` + lite + `"}]}`,
			find: LiteName, wantErr: `url ftp://h/l.img.xz: want an https:// or http:// URL`},
		{name: "not JSON", doc: `<html>`, wantErr: "OS list {url}: not JSON"},
		{name: "no os_list", doc: `{"imager": {}}`, wantErr: `OS list {url}: no "os_list" array: not an Imager OS list`},
		{name: "a JSON array", doc: `[{"os_list": []}]`, wantErr: `no "os_list" array: not an Imager OS list`},
		{name: "os_list not an array", doc: `{"os_list": {"name": "x"}}`, wantErr: `no "os_list" array`},
		{name: "nested too deep", doc: `{"os_list": [` + tooDeep + `]}`, wantErr: "categories nest deeper than 16 levels"},
	}
	const listURL = "http://127.0.0.1:1/os_list_imagingutility_v4.json"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr := strings.ReplaceAll(tt.wantErr, "{url}", listURL)
			l, err := ParseOSList(listURL, []byte(tt.doc))
			var e OSEntry
			if err == nil && tt.find != "" {
				e, err = l.Find(tt.find)
				if err == nil {
					err = e.Check()
				}
			}
			if wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line with %q", err, wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.URL != tt.wantURL || e.ImageDownloadSHA256 != tt.wantSum {
				t.Errorf("%s: url %s sha256 %s, want %s %s", tt.find, e.URL, e.ImageDownloadSHA256, tt.wantURL, tt.wantSum)
			}
			if tt.wantLiteArm != nil {
				var names []string
				for _, e := range l.LiteArm64() {
					names = append(names, e.Name)
				}
				if strings.Join(names, "|") != strings.Join(tt.wantLiteArm, "|") {
					t.Errorf("LiteArm64 = %q, want %q", names, tt.wantLiteArm)
				}
			}
		})
	}
}

// TestParseOSListFields: every field of an entry is read, and the
// category path is kept.
func TestParseOSListFields(t *testing.T) {
	lite := strings.Repeat("a", 64)
	l, err := ParseOSList("u", []byte(osListJSON("https://h/lite.img.xz", lite, "https://h/legacy.img.xz", lite)))
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Find(LiteName)
	if err != nil {
		t.Fatal(err)
	}
	want := OSEntry{Name: LiteName, Description: "A port of Debian Trixie with no desktop environment", URL: "https://h/lite.img.xz",
		Category: "Raspberry Pi OS (other)", ImageDownloadSHA256: lite, ExtractSHA256: strings.Repeat("c", 64),
		ImageDownloadSize: 550466056, ExtractSize: 3078619136, ReleaseDate: "2026-10-06"}
	if e != want {
		t.Errorf("entry\n%+v\nwant\n%+v", e, want)
	}
	if n := len(l.Entries); n != 6 {
		t.Errorf("%d images, want 6 (categories and the subitems_url one are not images)", n)
	}
}

// TestLoadOSList: the list comes over HTTP with the same guards as a
// .sha256, and the entry's image is checked against its sha256.
func TestLoadOSList(t *testing.T) {
	data, sum := payload(200000)
	_, other := payload(9)
	list := func(s string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			base := "http://" + r.Host
			w.Write([]byte(osListJSON(base+"/lite.img.xz", s, base+"/legacy.img.xz", other)))
		}
	}
	tests := []struct {
		name    string
		routes  map[string]http.HandlerFunc
		want    string
		fetched bool
	}{
		{name: "list and image", routes: map[string]http.HandlerFunc{"/os_list.json": list(sum)}, fetched: true},
		{name: "image with another sha256", routes: map[string]http.HandlerFunc{"/os_list.json": list(other)},
			want: "the download (200000 bytes) has sha256 " + sum + " but the OS list {base}/os_list.json gives " + other + "; deleted the download"},
		{name: "list missing", routes: map[string]http.HandlerFunc{}, want: "OS list: {base}/os_list.json: HTTP 404 Not Found"},
		{name: "list redirect loop", routes: map[string]http.HandlerFunc{"/os_list.json": redirect("/os_list.json")},
			want: "OS list: {base}/os_list.json: redirect loop: {base}/os_list.json redirects back to {base}/os_list.json"},
		{name: "list shorter than its Content-Length", routes: map[string]http.HandlerFunc{"/os_list.json": lying([]byte(osListJSON("a", sum, "b", sum)), 100)},
			want: "unexpected EOF"},
		{name: "list too long", routes: map[string]http.HandlerFunc{"/os_list.json": body([]byte(`{"os_list": [` + strings.Repeat(" ", maxOSList) + `]}`))},
			want: "more than the 16777216 bytes expected"},
		{name: "image announces more than it sends", routes: map[string]http.HandlerFunc{"/os_list.json": list(sum), "/lite.img.xz": lying(data, 1)},
			want: "announces 200001 bytes (Content-Length) but sends 200000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := tt.routes["/lite.img.xz"]; !ok {
				tt.routes["/lite.img.xz"] = body(data)
			}
			base, _ := site(t, tt.routes)
			f := &Fetcher{Dir: filepath.Join(t.TempDir(), "bases")}
			var p string
			l, err := f.LoadOSList(context.Background(), base+"/os_list.json")
			if err == nil {
				var e OSEntry
				if e, err = l.Find(LiteName); err == nil {
					p, err = f.FetchEntry(context.Background(), l, e)
				}
			}
			if tt.want != "" {
				want := strings.ReplaceAll(tt.want, "{base}", base)
				if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v\nwant one line with %q", err, want)
				}
				if left := leftovers(t, f.Dir); len(left) != 0 {
					t.Errorf("left in the cache dir: %v", left)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(f.Dir, sum+".img.xz") {
				t.Errorf("path %s", p)
			}
		})
	}
}
