// Command magibake bakes ready-to-flash Raspberry Pi OS cards for a cluster.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/magibake/magibake/internal/cli"
)

func main() {
	// Ctrl-C or SIGTERM cancels the context; the build removes its temp files
	// and leaves no output behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
