// Package testkit starts a chat server inside the test's own process, the way the end-to-end
// tests and the load tool's tests both need it: the embedded defaults on loopback ports, a data
// folder of the test's own and a token secret the test knows, so that it can sign tokens.
package testkit

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/server"
)

// Config is the default configuration with both listeners on loopback ports the system picks,
// a temporary data folder and secret as the token secret.
func Config(t testing.TB, secret string) *config.Config {
	t.Helper()
	cfg, err := config.Load("", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr, cfg.MQTT.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.JWTSecret = secret
	return cfg
}

// Start builds and starts a node on cfg. stop shuts it down within 10 s, failing the test if
// that fails; it runs at most once, so a test may stop the node itself (to restart it, say)
// before the test's cleanup calls stop too.
func Start(t testing.TB, cfg *config.Config, log *slog.Logger) (srv *server.Server, stop func()) {
	t.Helper()
	srv, err := server.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	t.Cleanup(stop)
	return srv, stop
}
