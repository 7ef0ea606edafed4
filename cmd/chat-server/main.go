// Command chat-server runs the Convead chat server, and holds its operator tools.
//
//	chat-server [-config FILE]            run the server
//	chat-server token -role R -org O -sub S [-ttl 24h] [-config FILE]
//	                                      print a token signed with the configured secret
//	chat-server version                   print the version
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
	"runtime/debug"
	"syscall"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/server"
)

const usage = `Convead chat server.

Usage:
  chat-server [-config FILE]        run the server (HTTP on :8000, MQTT on :1883 by default)
  chat-server token -role ROLE -org ORG -sub SUBJECT [-ttl 24h] [-config FILE]
                                    print a JWT signed with the configured secret
  chat-server version               print the version
  chat-server help                  print this help

Configuration: configs/chat-server.yaml holds every key with its default; -config FILE
overrides them, and CHAT_<KEY> environment variables override both
(http.addr -> CHAT_HTTP_ADDR).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stderr)
	case "token":
		err = token(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chat-server:", err)
		return 1
	}
	return 0
}

func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "chat-server (unknown version)"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
	}
	return "chat-server " + v + " " + info.GoVersion
}

func loadConfig(fs *flag.FlagSet, args []string, stderr io.Writer) (*config.Config, error) {
	path := fs.String("config", "", "configuration file (YAML); keys it omits keep their defaults")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see chat-server help)", fs.Arg(0))
	}
	return config.Load(*path, os.LookupEnv)
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

func serve(args []string, stderr io.Writer) error {
	cfg, err := loadConfig(flag.NewFlagSet("chat-server", flag.ContinueOnError), args, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg, os.Stdout)
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
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	case err := <-srv.Served():
		log.Error("HTTP server stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chat-server token", flag.ContinueOnError)
	role := fs.String("role", "", "visitor, manager or service")
	org := fs.String("org", "", "organisation id")
	sub := fs.String("sub", "", "subject: the visitor id, manager id or service name")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	cfg, err := loadConfig(fs, args, stderr)
	if err != nil {
		return err
	}
	secret, err := server.Secret(cfg)
	if err != nil {
		return err
	}
	v, err := server.Verifier(cfg, secret)
	if err != nil {
		return err
	}
	tok, err := v.Issue(auth.Identity{Subject: *sub, Role: auth.Role(*role), Org: *org}, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("%w (see chat-server token -h)", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
