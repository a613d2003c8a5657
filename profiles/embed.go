// Package profiles holds the default cluster profile (the seed's magi
// cluster), embedded into the binary; see internal/profile for the format.
package profiles

import "embed"

// FS holds cluster.yaml and one <hostname>.yaml per node.
//
//go:embed *.yaml
var FS embed.FS
