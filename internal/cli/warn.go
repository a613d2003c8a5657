package cli

import (
	"fmt"
	"io"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/profile"
)

// warnSecretFiles prints one line on w for each profile file holding a
// secret that group or others may read. The embedded profiles read their
// secrets from the environment and are never checked.
func warnSecretFiles(w io.Writer, s build.Sources) {
	if s.Profiles == "" {
		return
	}
	for _, line := range profile.SecretFileWarnings(s.Profiles, profile.Options{Getenv: s.Getenv}) {
		fmt.Fprintf(w, "magibake: %s\n", line)
	}
}
