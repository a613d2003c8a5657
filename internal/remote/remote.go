// Package remote runs a root shell script on a live node over the owner's
// ssh, trusting only the node's baked host key: the transport that magibake
// check and apply share.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// PasswordVar holds the sudo password for the nodes, when set.
const PasswordVar = "MAGIBAKE_SUDO_PASSWORD"

// scriptMarker separates sudo's password from the script on ssh's stdin.
const scriptMarker = "@@magibake-check-script"

// Node is one machine to log in to.
type Node struct {
	// Name is the node's name: the alias its baked key is trusted under.
	Name string
	// Host is what ssh connects to (an address, or a name ssh resolves).
	Host string
	// User logs in, with the owner's keys, agent and ssh configuration.
	User string
	// HostKey is the node's baked public host key, "ssh-ed25519 AAAA...".
	HostKey string
	// KeyFile is where HostKey is kept (the profiles' state directory):
	// named when the node presents another key, since cards baked from
	// another state directory present other keys.
	KeyFile string
}

// Session is how every node of one command is reached.
type Session struct {
	// SSHConfig is an ssh configuration file used instead of ~/.ssh/config.
	SSHConfig string
	// Password is sudo's on the nodes; "" when sudo asks for none.
	Password string
	// Via, when set, is a node (the head) that ssh jumps through, trusting
	// its baked key as well.
	Via *Node
}

// Result is what one run printed, and how it ended.
type Result struct {
	Stdout, Stderr string
	// Err is the run's error: nil, an *exec.ExitError or a failure to start.
	Err error
}

// Run logs in to n and runs script there as root through sudo. Only n's
// baked key (and Via's) is trusted: a node presenting another key is not
// logged in to and nothing is sent to it.
func (s Session) Run(ctx context.Context, n Node, script string) Result {
	dir, err := os.MkdirTemp("", "magibake-ssh-")
	if err != nil {
		return Result{Err: err}
	}
	defer os.RemoveAll(dir)
	known := filepath.Join(dir, "known_hosts")
	var lines strings.Builder
	for _, k := range []*Node{&n, s.Via} {
		if k == nil {
			continue
		}
		f := strings.Fields(k.HostKey)
		if len(f) < 2 {
			return Result{Err: fmt.Errorf("no baked host key of %s to trust", k.Name)}
		}
		fmt.Fprintf(&lines, "%s %s %s\n", k.Name, f[0], f[1])
	}
	if err := os.WriteFile(known, []byte(lines.String()), 0o600); err != nil {
		return Result{Err: err}
	}
	// The script travels on stdin after sudo's password and a marker line:
	// not in the command line, where ps and sudo's log on the node would
	// show it and its length is capped. sudo -S reads the password line
	// when it needs one; the shell it starts skips what is left before the
	// marker (the password, when sudo asked for none), then runs the rest.
	remote := `sudo -S -p '' sh -c 'while IFS= read -r l; do [ "$l" = "` + scriptMarker + `" ] && exec sh -s; done; exit 111'`
	args := s.pinned(known, n.Name)
	if s.Via != nil {
		// The jump's own ssh gets the same pinning: options on this command
		// line would not reach it (ProxyJump passes only the config file).
		jump := append([]string{"ssh"}, s.pinned(known, s.Via.Name)...)
		jump = append(jump, "-l", s.Via.User, "-W", "%h:%p", "--", s.Via.Host)
		args = append(args, "-o", "ProxyCommand="+shJoin(jump))
	}
	args = append(args, "-l", n.User, "--", n.Host, remote)
	var stdout, stderr bytes.Buffer
	run := exec.CommandContext(ctx, "ssh", args...)
	// The password goes to sudo alone, never into the environment of ssh
	// and whatever its configuration runs (ProxyCommand).
	run.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, PasswordVar+"=") })
	// sh -s reads the script as it runs it: the braces make it read all of
	// it first, and no command of it can read the rest as its input.
	run.Stdin = strings.NewReader(s.Password + "\n" + scriptMarker + "\n{\n" + script + "\n} </dev/null\n")
	run.Stdout, run.Stderr = &stdout, &stderr
	err = run.Run()
	return Result{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}

// pinned are ssh's options that trust only the key in known under alias:
// no ssh configuration can add a key from elsewhere (a command, DNS, the
// system's known_hosts).
func (s Session) pinned(known, alias string) []string {
	var args []string
	if s.SSHConfig != "" {
		args = append(args, "-F", s.SSHConfig)
	}
	return append(args, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+known, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "KnownHostsCommand=none", "-o", "VerifyHostKeyDNS=no",
		"-o", "HostKeyAlias="+alias, "-o", "ConnectTimeout=15", "-o", "ControlPath=none")
}

// Why says why a run that printed nothing usable failed, for a line of
// output: another host key, no login (with the way out), or what sudo or
// the shell said.
func (r Result) Why(n Node) string {
	why := strings.TrimSpace(r.Stderr)
	var exit *exec.ExitError
	switch {
	case strings.Contains(why, "Host key verification failed"):
		why := fmt.Sprintf("ssh %s@%s: it presents a host key other than the baked one", n.User, n.Host)
		if n.KeyFile != "" {
			why += " (" + n.KeyFile + ".pub: is this the state directory its card was baked with?)"
		}
		return why
	case errors.As(r.Err, &exit) && exit.ExitCode() == 255:
		// ssh's own failure: no login, so nothing ran.
		return fmt.Sprintf("cannot log in with ssh as %s@%s: %s; is %s up and on the home network? Give its address with --address %s=IP if %s is not it",
			n.User, n.Host, orDash(oneLine(why)), n.Name, n.Name, n.Host)
	}
	if why == "" && r.Err != nil {
		why = r.Err.Error()
	}
	if strings.Contains(why, "password") || strings.Contains(why, "sudo") {
		why += " (set " + PasswordVar + ", or run on a terminal)"
	}
	return fmt.Sprintf("ssh %s@%s: %s", n.User, n.Host, orDash(oneLine(why)))
}

// LoggedIn says ssh itself did not fail: the node was reached with its
// baked key and the login was accepted.
func (r Result) LoggedIn() bool {
	var exit *exec.ExitError
	return !(errors.As(r.Err, &exit) && exit.ExitCode() == 255) && !strings.Contains(r.Stderr, "Host key verification failed")
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shJoin quotes words for the sh that runs ssh's ProxyCommand.
func shJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if w == "%h:%p" {
			q[i] = w // ssh expands it before the shell sees it
			continue
		}
		w = strings.ReplaceAll(w, "%", "%%") // ssh expands % in ProxyCommand
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
