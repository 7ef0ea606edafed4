package faye

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/duty"
	"github.com/convead/chat-server/faye/bayeux"
)

// tokenIsManager verifies any token as a manager of org "shop" named by the token.
type tokenIsManager struct{}

func (tokenIsManager) Verify(tok string) (auth.Identity, error) {
	return auth.Identity{Subject: tok, Role: auth.Manager, Org: "shop"}, nil
}

// TestDutyReports: the engine reports what its sessions hold, and package duty puts the
// manager holding /service/* on duty; an ended stream takes it off duty until its next
// connect, an unsubscribe for good.
func TestDutyReports(t *testing.T) {
	reg := duty.NewRegistry()
	e := New(Config{Timeout: time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10},
		openACL{}, tokenIsManager{}, reg, permissive{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	run := func(batch string) []bayeux.Reply {
		t.Helper()
		msgs, err := bayeux.DecodeBatch([]byte(strings.ReplaceAll(batch, "EXT", `"ext":{"token":"m1"}`)), 10)
		if err != nil {
			t.Fatal(err)
		}
		replies, c := e.Process(context.Background(), nil, msgs, bayeux.LongPolling, Peer{IP: "127.0.0.1"})
		if c != nil {
			replies = append(replies, c.Reply)
		}
		return replies
	}
	onDuty := func(want ...string) {
		t.Helper()
		if got := reg.OnDuty("shop"); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Fatalf("on duty %v, want %v", got, want)
		}
	}
	id := run(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],EXT}]`)[0].ClientID
	run(`[{"channel":"/meta/subscribe","clientId":"` + id + `","subscription":["/service/v1","/conversations/c"],EXT}]`)
	onDuty()
	run(`[{"channel":"/meta/subscribe","clientId":"` + id + `","subscription":"/service/*",EXT}]`)
	onDuty("m1")
	e.Release(e.stream(e.session(id), nil))
	onDuty()
	run(`[{"channel":"/meta/connect","clientId":"` + id + `","connectionType":"long-polling","advice":{"timeout":0},EXT}]`)
	onDuty("m1")
	run(`[{"channel":"/meta/unsubscribe","clientId":"` + id + `","subscription":"/service/*",EXT}]`)
	onDuty()
	run(`[{"channel":"/meta/connect","clientId":"` + id + `","connectionType":"long-polling","advice":{"timeout":0},EXT}]`)
	onDuty()
}
