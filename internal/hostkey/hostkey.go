// Package hostkey keeps each node's SSH host key in a state directory beside
// the profiles, so that every card baked for a node, today or after a
// reflash, presents the same key and ssh never warns.
package hostkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/magibake/magibake/internal/profile"
)

// File is the key's file name, in the state directory and in /etc/ssh.
const File = "ssh_host_ed25519_key"

// Dir is where the host keys of a profile set live: DIR/.magibake/state for
// --profiles DIR, else $XDG_STATE_HOME/magibake/state (~/.local/state/...)
// for the embedded profiles. $MAGIBAKE_STATE overrides both.
func Dir(profilesDir string, getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if d := getenv("MAGIBAKE_STATE"); d != "" {
		return d, nil
	}
	if profilesDir != "" {
		return filepath.Join(profilesDir, ".magibake", "state"), nil
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "magibake", "state"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("host key state: no home directory (set MAGIBAKE_STATE): %w", err)
	}
	return filepath.Join(home, ".local", "state", "magibake", "state"), nil
}

// Key is an SSH host key pair as sshd reads it from /etc/ssh.
type Key struct {
	Private string // OpenSSH private key file, PEM, newline-terminated
	Public  string // "ssh-ed25519 AAAA... root@NODE", newline-terminated
}

// Keys are the host keys of a cluster's nodes, by hostname. They are kept
// apart from the profiles, which describe what the owner wrote: a key is
// state, and its private half a secret.
type Keys map[string]Key

// Load reads the key of every node of c from dir/NODE/ and never writes:
// a key that does not exist yet is made in memory and listed in the
// Generated, which only Save writes (and TakeBack removes again), so a
// command that fails, or one that only shows what a build would do, leaves
// no state behind.
func Load(c *profile.Cluster, dir string) (Keys, *Generated, error) {
	keys := Keys{}
	g := &Generated{dir: dir}
	for _, n := range c.Nodes {
		k, err := Read(dir, n.Hostname)
		if errors.Is(err, fs.ErrNotExist) {
			if k, err = New(n.Hostname, rand.Reader); err == nil {
				g.nodes = append(g.nodes, n.Hostname)
				g.keys = append(g.keys, k)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		keys[n.Hostname] = k
	}
	return keys, g, nil
}

// Generated holds the keys Load made, not yet saved.
type Generated struct {
	dir   string
	nodes []string
	keys  []Key
	made  []string // files and directories Save created, in order
}

// Nodes returns the names of the nodes whose key was made now.
func (g *Generated) Nodes() []string { return g.nodes }

// Dir returns the state directory the keys are saved in.
func (g *Generated) Dir() string { return g.dir }

// Save writes the generated keys to the state directory, never over a key
// that is already there. It saves all or none: on an error it takes back
// what it wrote.
func (g *Generated) Save() error {
	for i, n := range g.nodes {
		if err := g.save(n, g.keys[i]); err != nil {
			g.TakeBack()
			return err
		}
	}
	return nil
}

// TakeBack removes what Save wrote (the key files and the directories it
// made), for a build whose cards did not go out: a key no card carries
// must not become the node's identity.
func (g *Generated) TakeBack() {
	for i := len(g.made) - 1; i >= 0; i-- {
		os.Remove(g.made[i]) // a directory that is not empty stays
	}
	g.made = nil
}

// mkdirAll is os.MkdirAll that records the directories it made.
func (g *Generated) mkdirAll(d string) error {
	var missing []string
	for p := d; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		missing = append(missing, p)
	}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		g.made = append(g.made, missing[i])
	}
	return nil
}

// New makes an ed25519 host key for node from the randomness in r.
func New(node string, r io.Reader) (Key, error) {
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return Key{}, fmt.Errorf("host key for %s: %w", node, err)
	}
	return encode(node, priv)
}

func encode(node string, priv ed25519.PrivateKey) (Key, error) {
	comment := "root@" + node
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return Key{}, fmt.Errorf("host key for %s: %w", node, err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return Key{}, fmt.Errorf("host key for %s: %w", node, err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + comment + "\n"
	return Key{Private: string(pem.EncodeToMemory(block)), Public: line}, nil
}

// Read reads node's key from dir/NODE/. A missing key is fs.ErrNotExist; a
// key readable by others, unparsable, or whose .pub does not match is an
// error naming the file.
func Read(dir, node string) (Key, error) {
	path := filepath.Join(dir, node, File)
	st, err := os.Stat(path)
	if err != nil {
		return Key{}, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return Key{}, fmt.Errorf("%s: mode %04o lets others read this private host key; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	key, err := ssh.ParseRawPrivateKey(raw)
	if err != nil {
		return Key{}, fmt.Errorf("%s: not an OpenSSH private key: %w", path, err)
	}
	priv, ok := key.(*ed25519.PrivateKey)
	if !ok {
		return Key{}, fmt.Errorf("%s: a %T, want an ed25519 key", path, key)
	}
	k, err := encode(node, *priv)
	if err != nil {
		return Key{}, err
	}
	// Keep the file's own bytes: re-encoding draws a fresh check value.
	k.Private = string(raw)
	pubPath := path + ".pub"
	pubRaw, err := os.ReadFile(pubPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Key{}, fmt.Errorf("%s: missing beside its private key (delete both to get a new key, or restore it)", pubPath)
		}
		return Key{}, fmt.Errorf("%s: %v", pubPath, errors.Unwrap(err))
	}
	if !samePublic(pubRaw, k.Public) {
		return Key{}, fmt.Errorf("%s: does not match the private key %s", pubPath, path)
	}
	return k, nil
}

// samePublic compares the key type and data of two authorized_keys lines,
// ignoring the comment.
func samePublic(a []byte, b string) bool {
	fa, fb := bytes.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && string(fa[0]) == fb[0] && string(fa[1]) == fb[1]
}

func (g *Generated) save(node string, k Key) error {
	d := filepath.Join(g.dir, node)
	if err := g.mkdirAll(d); err != nil {
		return fmt.Errorf("host key state: %w", err)
	}
	path := filepath.Join(d, File)
	// O_EXCL: never overwrite a key that appeared meanwhile.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Two magibake runs on a fresh state directory: the first to save
		// wins, and this run's cards carry a key that is not kept.
		return fmt.Errorf("%s: another magibake saved a host key for %s while this one ran; run again to use it", path, node)
	}
	if err != nil {
		return fmt.Errorf("host key state: %w", err)
	}
	g.made = append(g.made, path)
	_, err = f.WriteString(k.Private)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("host key state: %s: %w", path, err)
	}
	// A private key without its .pub is refused by Read, so Save takes both
	// back on any error. A .pub left alone (its key deleted) is replaced.
	_, statErr := os.Lstat(path + ".pub")
	f, err = os.OpenFile(path+".pub", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("host key state: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) {
		g.made = append(g.made, path+".pub")
	}
	_, err = f.WriteString(k.Public)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("host key state: %s.pub: %w", path, err)
	}
	return nil
}

// KnownHosts returns one ~/.ssh/known_hosts line per node with a key: its
// name, NAME.DOMAIN, and its cluster address when it has a fixed one.
func KnownHosts(c *profile.Cluster, keys Keys) string {
	var b strings.Builder
	for _, n := range c.Nodes {
		k, ok := keys[n.Hostname]
		if !ok || k.Public == "" {
			continue
		}
		names := []string{n.Hostname}
		if c.Domain != "" {
			names = append(names, n.Hostname+"."+c.Domain)
		}
		if n.Address.IsValid() {
			names = append(names, n.Address.String())
		}
		f := strings.Fields(k.Public)
		fmt.Fprintf(&b, "%s %s %s\n", strings.Join(names, ","), f[0], f[1])
	}
	return b.String()
}
