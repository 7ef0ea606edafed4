package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/server"
	"github.com/convead/chat-server/store/mongo"
)

// redacted replaces secrets in the printed configuration.
const redacted = "<redacted>"

func checkConfig(c *cli, flags *flag.FlagSet, args []string) error {
	path := configFlag(flags)
	connect := flags.Bool("connect", false, "also connect to MongoDB (mongo.uri) as the server would, which creates its indexes if missing")
	quiet := flags.Bool("quiet", false, "print only problems, not the effective configuration")
	if err := parse(flags, args); err != nil {
		return err
	}
	cfg, err := c.load(*path)
	if err != nil {
		return fmt.Errorf("configuration is invalid:\n%s", indent(err))
	}
	ctx := context.Background()
	var problems []string
	for _, check := range []func() []string{
		func() []string { return checkSecret(cfg) },
		func() []string { return checkFiles(cfg) },
		func() []string { return checkAddrs(cfg) },
		func() []string { return checkStore(ctx, cfg, *connect) },
	} {
		problems = append(problems, check()...)
	}
	if !*quiet {
		out, err := yaml.Marshal(redact(*cfg))
		if err != nil {
			return fmt.Errorf("print the configuration: %w", err)
		}
		fmt.Fprintf(c.stdout, "# Effective configuration (secrets redacted)\n%s", out)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the server would not start:\n  %s", strings.Join(problems, "\n  "))
	}
	fmt.Fprintln(c.stderr, "chat-server check-config: configuration OK")
	return nil
}

func indent(err error) string {
	return "  " + strings.ReplaceAll(err.Error(), "\n", "\n  ")
}

// problem names the key to change, and its environment variable.
func problem(key, format string, args ...any) string {
	return fmt.Sprintf("%s (%s): %s", key, config.EnvName(key), fmt.Sprintf(format, args...))
}

// checkSecret checks the JWT secret the server would use, without generating one.
func checkSecret(cfg *config.Config) []string {
	if cfg.Auth.JWTSecret != "" {
		return nil // its length is checked by config
	}
	file := filepath.Join(cfg.DataDir, server.SecretFile)
	b, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writable(cfg.DataDir); err != nil {
			return []string{problem("data_dir", "a JWT secret would be generated in %s, but %v; or set auth.jwt_secret", file, err)}
		}
		return nil
	case err != nil:
		return []string{problem("auth.jwt_secret", "not set, and the generated secret cannot be read: %v", err)}
	case len(strings.TrimSpace(string(b))) < 32:
		return []string{problem("auth.jwt_secret", "not set, and the secret in %s is shorter than 32 characters: delete the file to generate a new one, or set auth.jwt_secret", file)}
	}
	return nil
}

// checkFiles checks the files the server reads at start.
func checkFiles(cfg *config.Config) []string {
	var out []string
	if cfg.MQTT.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(cfg.MQTT.TLSCertFile, cfg.MQTT.TLSKeyFile); err != nil {
			out = append(out, problem("mqtt.tls_cert_file", "with mqtt.tls_key_file: %v", err))
		}
	}
	if cfg.Faye.ClientJSPath != "" {
		if _, err := os.ReadFile(cfg.Faye.ClientJSPath); err != nil {
			out = append(out, problem("faye.client_js_path", "%v", err))
		}
	}
	return out
}

// checkAddrs checks that every listen address is host:port and that none is used twice.
func checkAddrs(cfg *config.Config) []string {
	var out []string
	seen := map[string]string{}
	addrs := [][2]string{{"http.addr", cfg.HTTP.Addr}, {"mqtt.addr", cfg.MQTT.Addr}}
	if cfg.Metrics.Enabled && cfg.Metrics.Addr != "" {
		addrs = append(addrs, [2]string{"metrics.addr", cfg.Metrics.Addr})
	}
	for _, a := range addrs {
		key, addr := a[0], a[1]
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			out = append(out, problem(key, "must be host:port or :port, got %q", addr))
			continue
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			out = append(out, problem(key, "port must be a number from 0 to 65535, got %q", port))
			continue
		}
		if other, dup := seen[addr]; dup && port != "0" {
			out = append(out, problem(key, "%q is also %s: give each listener its own port", addr, other))
		}
		seen[addr] = key
	}
	return out
}

// checkStore checks the store the server would open: the data folder can be written, and
// with connect, MongoDB answers.
func checkStore(ctx context.Context, cfg *config.Config, connect bool) []string {
	var out []string
	if err := writable(cfg.DataDir); err != nil {
		out = append(out, problem("data_dir", "%v", err))
	}
	if cfg.Mongo.URI == "" || !connect {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, 2*cfg.Mongo.Timeout)
	defer cancel()
	st, err := mongo.Open(ctx, cfg.Mongo.URI, cfg.Mongo.Database, cfg.Mongo.Timeout)
	if err != nil {
		return append(out, problem("mongo.uri", "%s: %v (or raise mongo.timeout)", redactURI(cfg.Mongo.URI), err))
	}
	defer st.Close(context.Background())
	if err := st.Ping(ctx); err != nil {
		out = append(out, problem("mongo.uri", "%s: %v", redactURI(cfg.Mongo.URI), err))
	}
	return out
}

// writable reports whether dir, or the folder it would be created in, accepts new files. It
// creates and removes one temporary file.
func writable(dir string) error {
	d := dir
	for {
		st, err := os.Stat(d)
		if err == nil {
			if !st.IsDir() {
				return fmt.Errorf("%s is not a folder", d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("no existing folder above %s", dir)
		}
		d = parent
	}
	f, err := os.CreateTemp(d, ".chat-server-check-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", d, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// redact returns cfg with its secrets replaced.
func redact(cfg config.Config) config.Config {
	if cfg.Auth.JWTSecret != "" {
		cfg.Auth.JWTSecret = redacted
	}
	keys := make([]string, len(cfg.Auth.JWTPreviousKeys))
	for i, k := range cfg.Auth.JWTPreviousKeys {
		kid, _, _ := strings.Cut(k, ":")
		keys[i] = kid + ":" + redacted
	}
	cfg.Auth.JWTPreviousKeys = keys
	cfg.Mongo.URI = redactURI(cfg.Mongo.URI)
	return cfg
}

// redactURI hides the password of a connection string.
func redactURI(uri string) string {
	if uri == "" {
		return ""
	}
	u, err := url.Parse(uri)
	if err != nil {
		return redacted
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
