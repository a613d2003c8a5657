// Command magibake bakes ready-to-flash Raspberry Pi OS cards for a cluster.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/magibake/magibake/internal/cli"
)

func main() {
	// A build keeps what it needs well under 200 MiB live (decoded base
	// blocks, compressor windows), but by default the collector lets the
	// heap grow to twice the live size: 465 MiB peak RSS was measured for
	// an .img.xz from an .img.xz. A soft limit keeps the peak under issue
	// 6's 300 MiB; GOMEMLIMIT still overrides it.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(200 << 20)
	}
	// Ctrl-C or SIGTERM cancels the context; the build removes its temp files
	// and leaves no output behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
