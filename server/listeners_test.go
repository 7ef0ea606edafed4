package server

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/config"
)

// TestHTTPListenerDeath: an HTTP listener closed from under the server (not by Shutdown) is
// reported by Served, so that the process exits non-zero, and /readyz fails naming it.
func TestHTTPListenerDeath(t *testing.T) {
	cfg, err := config.Load("", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr, cfg.MQTT.Addr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Auth.JWTSecret = "server-test-secret-server-test-secret"
	s, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	if body, status := readyz(t, s); status != 200 {
		t.Fatalf("/readyz before: %d %s", status, body)
	}

	_ = s.httpLn.Close() // the accept loop's listener, under the wrapper: as if it failed
	select {
	case err := <-s.Served():
		if err == nil || !strings.Contains(err.Error(), "http listener") {
			t.Fatalf("Served: %v; want the HTTP listener's death", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Served reported nothing after the HTTP listener died")
	}
	if body, status := readyz(t, s); status != 503 || !strings.Contains(body, `"http":"http listener: accept:`) {
		t.Fatalf("/readyz after: %d %s; want 503 naming the HTTP listener", status, body)
	}
}

// readyz asks the app directly: the HTTP listener may be dead.
func readyz(t *testing.T, s *Server) (string, int) {
	t.Helper()
	resp, err := s.app.Test(httptest.NewRequest("GET", "/readyz", nil), 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}
