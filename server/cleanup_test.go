package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/store/bolt"
)

func TestCleanupStackUnwindsNewestFirst(t *testing.T) {
	var order []string
	var c cleanupStack
	boom := errors.New("boom")
	c.push(func(context.Context) error { order = append(order, "store"); return nil })
	c.push(func(context.Context) error { order = append(order, "node"); return boom })
	c.push(func(context.Context) error { order = append(order, "listener"); return nil })
	if err := c.unwind(context.Background()); !errors.Is(err, boom) {
		t.Errorf("unwind = %v, want the node's error", err)
	}
	if want := []string{"listener", "node", "store"}; !slices.Equal(order, want) {
		t.Errorf("released %v, want %v", order, want)
	}
	if err := c.unwind(context.Background()); err != nil || len(order) != 3 {
		t.Errorf("a second unwind released again: %v, %v", order, err)
	}
}

// TestNewReleasesTheStoreWhenItFails: a build that fails after the store opened closes it, so
// that the data folder is free for the next attempt (bbolt locks its file).
func TestNewReleasesTheStoreWhenItFails(t *testing.T) {
	cfg, err := config.Load("", func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.Auth.JWTSecret = "server-test-secret-server-test-secret"
	cfg.MQTT.TLSCertFile, cfg.MQTT.TLSKeyFile = "missing-cert.pem", "missing-key.pem"
	ctx := context.Background()
	if _, err := New(ctx, cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "mqtt.tls_cert_file") {
		t.Fatalf("New with a missing certificate: %v", err)
	}
	st, err := bolt.Open(cfg.DataDir)
	if err != nil {
		t.Fatalf("the failed build left the store open: %v", err)
	}
	_ = st.Close(ctx)
}
