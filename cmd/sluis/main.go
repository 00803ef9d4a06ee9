// Command sluis is the sluis gateway and its operator's CLI in one binary.
// Everything happens in internal/cli.Run, so tests can start the whole
// program the way this does.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluis-gateway/sluis/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, cli.ErrUsage) && !errors.Is(err, cli.ErrChecksFailed) {
			fmt.Fprintln(os.Stderr, "sluis:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}
