package faye

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/faye/bayeux"
)

// TestForwardedRequestKeepsIdentityRule: a long-poll forwarded by another node carries the
// client's batch as sent, ext included, so its owner refuses a foreign token as it would here.
func TestForwardedRequestKeepsIdentityRule(t *testing.T) {
	e := New(Config{Timeout: time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10, MaxQueue: 10},
		openACL{}, tokenIsSubject{}, permissive{}, permissive{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	msgs, err := bayeux.DecodeBatch([]byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"v1"}}]`), 10)
	if err != nil {
		t.Fatal(err)
	}
	replies, _ := e.Process(context.Background(), nil, msgs, bayeux.LongPolling, Peer{IP: "127.0.0.1"})
	cid := replies[0].ClientID
	forward := func(tok string) string {
		batch := `[{"channel":"/meta/connect","clientId":"` + cid + `","connectionType":"long-polling","advice":{"timeout":0},"ext":{"token":"` + tok + `"}}]`
		req, err := json.Marshal(forwarded{Transport: bayeux.LongPolling, Peer: Peer{IP: "10.0.0.2"}, Batch: json.RawMessage(batch)})
		if err != nil {
			t.Fatal(err)
		}
		return string(e.ServeForwarded(context.Background(), req))
	}
	if out := forward("v2"); !strings.Contains(out, `"error":"401:`+cid+`:Unknown client"`) {
		t.Errorf("forwarded connect with another identity's token: %s", out)
	}
	if out := forward("v1"); !strings.Contains(out, `"successful":true`) {
		t.Errorf("forwarded connect with the session's token: %s", out)
	}
}
