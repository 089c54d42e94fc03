// Command chatd is a real-time chat server: the Django Channels chat
// tutorials' system (rooms, WebSockets, a channel layer) as one Go binary.
//
//	chatd                 serve (the default command)
//	chatd -h              every flag and environment variable
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			os.Exit(2) // the command printed the problem and its usage
		}
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

// run is chatd's whole program, callable from tests: args without the
// program name, the environment as a function, and its standard streams.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	err := dispatch(ctx, cmd, args, getenv, stdin, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}
