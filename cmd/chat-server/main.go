// Command chat-server runs the Convead chat server, and holds its operator tools.
//
//	chat-server [serve] [-config FILE]    run the server
//	chat-server token -role R -org O -sub S [-ttl 24h] [-config FILE]
//	                                      print a token signed with the configured secret
//	chat-server token verify [-config FILE] TOKEN
//	                                      say whether the server accepts TOKEN, and why
//	chat-server check-config [-config FILE] [-connect] [-quiet]
//	                                      validate the configuration, print it without secrets
//	chat-server version                   print the version
//	chat-server help [COMMAND]            print help
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/server"
)

const usage = `Convead chat server.

Usage:
  chat-server [serve] [-config FILE]  run the server (HTTP on :8000, MQTT on :1883 by default)
  chat-server token -role ROLE -org ORG -sub SUBJECT [-ttl 24h] [-config FILE]
                                      print a JWT signed with the configured secret
  chat-server token verify [-config FILE] TOKEN
                                      say whether the server would accept TOKEN, and why not
  chat-server check-config [-config FILE] [-connect] [-quiet]
                                      validate the configuration and print it, secrets redacted
  chat-server version                 print the version
  chat-server help [COMMAND]          print this help, or a command's

Every command takes -h for its own help.

Configuration: config/defaults.yaml holds every key with its default; -config FILE
overrides them, and CHAT_<KEY> environment variables override both
(http.addr -> CHAT_HTTP_ADDR).
`

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed: a bad configuration, an unreachable store
	exitUsage = 2 // the command line itself is wrong
)

// command is one subcommand: its flags are defined by run, before it calls parse.
type command struct {
	name     string
	synopsis string
	about    string
	run      func(c *cli, fs *flag.FlagSet, args []string) error
}

var commands = []command{
	{"serve", "[-config FILE]", "Runs the server until SIGINT or SIGTERM, then shuts down gracefully. The default command.", serve},
	{"token", "-role ROLE -org ORG -sub SUBJECT [-ttl 24h] [-config FILE]\n       chat-server token verify [-config FILE] TOKEN",
		"Prints a JWT signed with the configured secret (auth.jwt_secret, or the one generated in data_dir).\n" +
			"With verify, checks TOKEN as the server would (server key, organisation keys from the store,\n" +
			"audience, issuer, expiry) and prints why it is accepted or refused; exits 1 when refused.\n" +
			"With the embedded store, stop the server first: it holds the database file.", token},
	{"check-config", "[-config FILE] [-connect] [-quiet]", "Loads the configuration as serve would (defaults, -config FILE, CHAT_* environment),\n" +
		"checks everything the server needs before it starts (values, JWT secret, TLS files, the Faye\n" +
		"bundle, addresses, the data folder), and prints the effective configuration with secrets\n" +
		"redacted. Exits 1, naming each key to change, when something is wrong.", checkConfig},
	{"version", "", "Prints the module version, VCS revision, Go version and platform.", versionCmd},
}

// cli is one invocation's output.
type cli struct {
	stdout, stderr io.Writer
	lookupEnv      func(string) (string, bool)
}

// usageError is a wrong command line: it exits 2 and shows the command's usage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	return runEnv(args, os.LookupEnv, stdout, stderr)
}

// runEnv runs a command line with the environment lookupEnv, and returns the exit code.
func runEnv(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, lookupEnv: lookupEnv}
	name := "serve"
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "help" || a == "-h" || a == "-help" || a == "--help":
			if len(args) > 1 && a == "help" {
				cmd, ok := find(args[1])
				if !ok {
					fmt.Fprintf(stderr, "chat-server: unknown command %q\n\n%s", args[1], usage)
					return exitUsage
				}
				cmd.help(stdout, flagsOf(c, cmd))
				return exitOK
			}
			fmt.Fprint(stdout, usage)
			return exitOK
		case !strings.HasPrefix(a, "-"):
			name, args = a, args[1:]
		}
	}
	cmd, ok := find(name)
	if !ok {
		fmt.Fprintf(stderr, "chat-server: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
	fs := newFlagSet(cmd)
	err := cmd.run(c, fs, args)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		cmd.help(stdout, fs)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "chat-server %s: %v\n\n", cmd.name, ue.err)
		cmd.help(stderr, fs)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "chat-server %s: %v\n", cmd.name, err)
		return exitFail
	}
}

func find(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func newFlagSet(cmd command) *flag.FlagSet {
	fs := flag.NewFlagSet("chat-server "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints errors and help itself, to the right stream
	return fs
}

// flagsOf returns cmd's flags without running it: its run stops at parse on -h.
func flagsOf(c *cli, cmd command) *flag.FlagSet {
	fs := newFlagSet(cmd)
	_ = cmd.run(c, fs, []string{"-h"})
	return fs
}

func (cmd command) help(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("chat-server "+cmd.name+" "+cmd.synopsis), cmd.about)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// parse parses a command's flags; it allows no positional arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// configFlag defines -config; load reads the configuration it names.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "configuration file (YAML); keys it omits keep their defaults")
}

func (c *cli) load(path string) (*config.Config, error) {
	return config.Load(path, c.lookupEnv)
}

// loadWithSecret loads the configuration and the server's signing key, for the token commands.
func (c *cli) loadWithSecret(path string) (*config.Config, []byte, error) {
	cfg, err := c.load(path)
	if err != nil {
		return nil, nil, err
	}
	secret, err := server.Secret(cfg)
	return cfg, secret, err
}

func version() string {
	v, rev := "(unknown)", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		v = info.Main.Version
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" && modified {
			rev += "+modified"
		}
	}
	out := "chat-server " + v
	if rev != "" {
		out += " " + rev
	}
	return out + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

func versionCmd(c *cli, fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, version())
	return nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(c *cli, fs *flag.FlagSet, args []string) error {
	path := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := c.load(*path)
	if err != nil {
		return fmt.Errorf("%w\n(chat-server check-config lists every problem)", err)
	}
	log := newLogger(cfg, c.stdout)
	start := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	log.Info("chat server ready", "startup", time.Since(start).String(), "version", version())
	// failed is why the node stopped serving on its own: it exits 1, so that a supervisor
	// restarts it (and an orchestrator, seeing /readyz fail meanwhile, sends no traffic).
	var failed error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case err := <-srv.Served():
		if err == nil {
			err = errors.New("HTTP server stopped") // only Shutdown should stop it
		}
		failed = fmt.Errorf("stopped serving: %w", err)
		log.Error("stopped serving: shutting down", "err", err.Error())
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return errors.Join(failed, fmt.Errorf("shutdown: %w", err))
	}
	log.Info("stopped")
	return failed
}

func token(c *cli, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		return tokenVerify(c, fs, args[1:])
	}
	role := fs.String("role", "", "visitor, manager or service; admin (server-wide, without -org) for the administration API only")
	org := fs.String("org", "", "organisation id")
	sub := fs.String("sub", "", "subject: the visitor id, manager id or service name")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	path := configFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, secret, err := c.loadWithSecret(*path)
	if err != nil {
		return err
	}
	v, err := server.Verifier(cfg, secret, nil, nil)
	if err != nil {
		return err
	}
	tok, err := v.Issue(auth.Identity{Subject: *sub, Role: auth.Role(*role), Org: *org}, *ttl, time.Now())
	if err != nil {
		return usageError{err}
	}
	fmt.Fprintln(c.stdout, tok)
	return nil
}
