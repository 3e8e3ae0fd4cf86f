// Command pbx2teams runs the pbx2teams service: portal, REST API, SIP engine
// and media relay in one binary.
//
//	pbx2teams serve [flags]   run the service
//	pbx2teams version         print the version
//
// Every flag has an environment variable (PBX2TEAMS_ plus the flag name in
// upper case with dashes as underscores); a flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pbx2teams/pbx2teams/msim"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "msim":
		err = runMsim(ctx, os.Args[2:])
	case "version", "--version", "-v":
		fmt.Println("pbx2teams", version)
	case "help", "--help", "-h":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "pbx2teams: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "pbx2teams:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: pbx2teams <command> [flags]

commands:
  serve     run the service (portal, API, SIP engine, media relay)
  msim      run the Microsoft 365 / Teams simulator on its own
  version   print the version

Run "pbx2teams serve -h" for the flags of serve.
`)
}

// envFlags fills flags not given on the command line from PBX2TEAMS_* variables.
func envFlags(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "PBX2TEAMS_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// runMsim runs the Microsoft 365 simulator standalone, e.g. for a staging
// node that should not reach Microsoft.
func runMsim(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("msim", flag.ContinueOnError)
	var o msim.ServeOptions
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:8765", "listen address")
	fs.StringVar(&o.Fixture, "fixture", "", "JSON tenant fixture (default: the built-in sandbox tenant)")
	fs.IntVar(&o.Generate, "generate", 0, "also generate a tenant with this many users")
	fs.StringVar(&o.BaseURL, "base-url", "", "URL clients reach the simulator at (default http://<addr>)")
	level := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*level)
	if err != nil {
		return err
	}
	o.Logger = log
	o.Ready = func(base string, _ *msim.Sim) { log.Info("Microsoft 365 simulator ready", "url", base) }
	return msim.Serve(ctx, o)
}
