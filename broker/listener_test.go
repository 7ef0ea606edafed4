package broker

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestListenerDeath: the MQTT listener closed from under the broker (not by Close) makes
// Dead fire and Ready fail naming it; before, Ready said nothing while MQTT was gone.
func TestListenerDeath(t *testing.T) {
	b := New(Config{Addr: "127.0.0.1:0", QueuePerClient: 10, MaxSubscriptions: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready before: %v", err)
	}
	_ = b.accept.Listener.Close() // under the wrapper: as if accept failed for good
	select {
	case <-b.Dead():
	case <-time.After(5 * time.Second):
		t.Fatal("Dead not closed after the listener died")
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "mqtt listener") {
		t.Fatalf("Ready after: %v; want the MQTT listener's death", err)
	}
}
