package profile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// secretFields are the profile values that are secrets, by section and key.
var secretFields = []struct{ section, key, what string }{
	{"wifi", "passphrase", "the Wi-Fi passphrase"},
	{"user", "password_hash", "the password hash"},
}

// SecretFileWarnings returns one line for each host file that holds a secret
// of the profile in dir and that group or others may read: cluster.yaml when
// it holds the Wi-Fi passphrase or the password hash literally, or the file
// a {file: PATH} value of those reads. A file that cannot be read or parsed
// gives no warning: LoadDir reports it.
func SecretFileWarnings(dir string, opt Options) []string {
	if opt.FileBase == "" {
		opt.FileBase = dir
	}
	clusterPath := filepath.Join(dir, clusterFile)
	raw, err := os.ReadFile(clusterPath)
	if err != nil {
		return nil
	}
	var doc yaml.Node
	if yaml.Unmarshal(raw, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	held := map[string][]string{} // host path -> the secrets it holds
	var order []string
	for _, f := range secretFields {
		n := child(child(resolve(doc.Content[0]), f.section), f.key)
		if n == nil {
			continue
		}
		var v value
		if v.UnmarshalYAML(n) != nil {
			continue
		}
		path := clusterPath
		switch {
		case v.file != "":
			if path, err = v.filePath(opt); err != nil {
				continue
			}
		case v.env != "" || v.literal == "":
			continue
		}
		if held[path] == nil {
			order = append(order, path)
		}
		held[path] = append(held[path], f.what)
	}
	var out []string
	for _, p := range order {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		perm := st.Mode().Perm()
		var who []string
		if perm&0o040 != 0 {
			who = append(who, "its group")
		}
		if perm&0o004 != 0 {
			who = append(who, "every user")
		}
		if len(who) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("warning: %s holds %s and is readable by %s (mode %04o): chmod 600 %s",
			p, strings.Join(held[p], " and "), strings.Join(who, " and "), perm, p))
	}
	return out
}

// child returns the value of key in mapping n, aliases followed; nil when
// n is not a mapping or has no such key.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return resolve(n.Content[i+1])
		}
	}
	return nil
}
