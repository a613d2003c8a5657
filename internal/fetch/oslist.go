package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// DefaultOSList is the OS list Raspberry Pi Imager reads: every image it
// offers, with its URL and sha256.
const DefaultOSList = "https://downloads.raspberrypi.com/os_list_imagingutility_v4.json"

// The OS list names of the two images magibake bakes from: the current
// Lite (Trixie) and its Bookworm sibling, both under "Raspberry Pi OS
// (other)" in Imager's list.
const (
	LiteName       = "Raspberry Pi OS Lite (64-bit)"
	LegacyLiteName = "Raspberry Pi OS (Legacy, 64-bit) Lite"
)

// maxOSList bounds the list download; the real one is a few hundred KiB.
const maxOSList = 16 << 20

// maxOSListDepth bounds how deep categories nest; Imager's nest two levels.
const maxOSListDepth = 16

// OSEntry is one image of the OS list (categories are not entries).
type OSEntry struct {
	Name, Description, URL string
	// Category is the names of the categories above it, joined by " > ".
	Category string
	// ImageDownloadSHA256 and ImageDownloadSize are the download's (the
	// .img.xz); ExtractSHA256 and ExtractSize the decompressed image's.
	ImageDownloadSHA256, ExtractSHA256 string
	ImageDownloadSize, ExtractSize     int64
	ReleaseDate                        string
}

// OSList is a parsed OS list: its images in the order Imager shows them.
type OSList struct {
	URL     string
	Entries []OSEntry
}

// LoadOSList downloads and parses an OS list in Imager's
// os_list_imagingutility_v4.json format: {"os_list": [...]}, where an
// entry with "subitems" is a category holding more entries.
func (f *Fetcher) LoadOSList(ctx context.Context, listURL string) (*OSList, error) {
	b, err := f.get(ctx, listURL, maxOSList)
	if err != nil {
		return nil, fmt.Errorf("OS list: %w", err)
	}
	return ParseOSList(listURL, b)
}

// ParseOSList parses an OS list read from listURL. Entries are read
// leniently, since the list holds many vendors' images: a field of
// another type than expected reads as empty, and only the entry magibake
// uses is checked (OSEntry.Check).
func ParseOSList(listURL string, b []byte) (*OSList, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("OS list %s: not JSON: %w", listURL, err)
	}
	doc, _ := v.(map[string]any)
	items, ok := doc["os_list"].([]any)
	if !ok {
		return nil, fmt.Errorf("OS list %s: no \"os_list\" array: not an Imager OS list", listURL)
	}
	l := &OSList{URL: listURL}
	if err := l.walk(items, nil); err != nil {
		return nil, fmt.Errorf("OS list %s: %w", listURL, err)
	}
	return l, nil
}

func (l *OSList) walk(items []any, path []string) error {
	if len(path) > maxOSListDepth {
		return fmt.Errorf("categories nest deeper than %d levels under %q", maxOSListDepth, strings.Join(path, " > "))
	}
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		name := str(m["name"])
		if sub, ok := m["subitems"].([]any); ok {
			if err := l.walk(sub, append(path[:len(path):len(path)], name)); err != nil {
				return err
			}
			continue
		}
		if _, ok := m["url"]; !ok {
			continue // e.g. a category whose entries live at "subitems_url"
		}
		l.Entries = append(l.Entries, OSEntry{
			Name:                name,
			Description:         str(m["description"]),
			URL:                 str(m["url"]),
			Category:            strings.Join(path, " > "),
			ImageDownloadSHA256: strings.ToLower(str(m["image_download_sha256"])),
			ExtractSHA256:       strings.ToLower(str(m["extract_sha256"])),
			ImageDownloadSize:   num(m["image_download_size"]),
			ExtractSize:         num(m["extract_size"]),
			ReleaseDate:         str(m["release_date"]),
		})
	}
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func num(v any) int64 {
	n, ok := v.(json.Number)
	if !ok {
		return 0
	}
	i, err := n.Int64()
	if err != nil {
		return 0
	}
	return i
}

// Find returns the first image named name, as Imager would show it.
func (l *OSList) Find(name string) (OSEntry, error) {
	for _, e := range l.Entries {
		if e.Name == name {
			return e, nil
		}
	}
	return OSEntry{}, fmt.Errorf("OS list %s has no %q entry (%d images listed)", l.URL, name, len(l.Entries))
}

// LiteArm64 returns the 64-bit Lite images: the current one, the Legacy
// one, and any other the list names so.
func (l *OSList) LiteArm64() []OSEntry {
	var out []OSEntry
	for _, e := range l.Entries {
		if strings.Contains(e.Name, "Lite") && strings.Contains(e.Name, "64-bit") {
			out = append(out, e)
		}
	}
	return out
}

// Check says whether the entry can be fetched and pinned: an http(s) URL
// and the download's sha256.
func (e OSEntry) Check() error {
	if err := checkHTTPURL(e.URL); err != nil {
		return fmt.Errorf("OS list entry %q: url %w", e.Name, err)
	}
	if !sumRE.MatchString(e.ImageDownloadSHA256) {
		return fmt.Errorf("OS list entry %q: image_download_sha256 %q is not 64 hex digits (magibake fetch --url %s checks it against its .sha256 instead)", e.Name, clip(e.ImageDownloadSHA256), e.URL)
	}
	return nil
}

// FetchEntry downloads the entry's image into Dir, checked against the
// list's image_download_sha256, and returns its path.
func (f *Fetcher) FetchEntry(ctx context.Context, l *OSList, e OSEntry) (string, error) {
	if err := e.Check(); err != nil {
		return "", err
	}
	return f.FetchFrom(ctx, e.URL, e.ImageDownloadSHA256, "the OS list "+l.URL+" gives")
}
