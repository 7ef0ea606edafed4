package faye

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/duty"
	"github.com/convead/chat-server/faye/bayeux"
)

// openACL lets everyone subscribe and publish.
type openACL struct{}

func (openACL) CanSubscribe(context.Context, auth.Identity, string) error { return nil }
func (openACL) CanPublish(context.Context, auth.Identity, string) error   { return nil }
func (openACL) MayReceive(auth.Identity, string) bool                     { return true }

// tokenIsSubject verifies any token as a visitor of org "shop" named by the token.
type tokenIsSubject struct{}

func (tokenIsSubject) Verify(tok string) (auth.Identity, error) {
	return auth.Identity{Subject: tok, Role: auth.Visitor, Org: "shop"}, nil
}

func TestStats(t *testing.T) {
	e := New(Config{Timeout: time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10, MaxQueue: 2},
		openACL{}, tokenIsSubject{}, duty.NewRegistry(), nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	run := func(batch string) []bayeux.Reply {
		t.Helper()
		msgs, err := bayeux.DecodeBatch([]byte(batch), 10)
		if err != nil {
			t.Fatal(err)
		}
		replies, c := e.Process(context.Background(), nil, msgs, bayeux.LongPolling, Peer{IP: "127.0.0.1"})
		if c != nil {
			replies = append(replies, c.Reply)
		}
		return replies
	}
	session := func(visitor, connType string) string {
		t.Helper()
		id := run(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"` + visitor + `"}}]`)[0].ClientID
		if connType != "" {
			run(`[{"channel":"/meta/connect","clientId":"` + id + `","connectionType":"` + connType + `","ext":{"token":"` + visitor + `"}}]`)
		}
		run(`[{"channel":"/meta/subscribe","clientId":"` + id + `","subscription":["/service/` + visitor + `","/notifications/` + visitor + `"],"ext":{"token":"` + visitor + `"}}]`)
		return id
	}
	session("v1", bayeux.LongPolling)
	session("v2", bayeux.CallbackPolling)
	session("v3", "")
	for range 3 { // v1's queue holds 2: the third is dropped and the session ended
		e.Deliver("orgs/shop/service/v1", []byte(`{"n":1}`))
	}
	e.Deliver("orgs/shop/service/v2", []byte(`{"n":1}`))
	deadline := time.Now().Add(10 * time.Second)
	for e.Sessions() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // the overflowed session is ended in the background
	}
	st := e.Stats()
	want := map[string]int{bayeux.LongPolling: 0, bayeux.CallbackPolling: 1, NotConnected: 1, bayeux.WebSocket: 0, bayeux.EventSource: 0, bayeux.CrossOriginLongPolling: 0}
	for k, n := range want {
		if st.SessionsByTransport[k] != n {
			t.Errorf("sessions[%s] = %d, want %d (all %v)", k, st.SessionsByTransport[k], n, st.SessionsByTransport)
		}
	}
	if st.Delivered != 3 || st.Dropped != 1 || st.Overflowed != 1 {
		t.Errorf("delivered %d dropped %d overflowed %d, want 3 1 1", st.Delivered, st.Dropped, st.Overflowed)
	}
	if st.Subscriptions != 4 || st.Queued != 1 || st.QueuedMax != 1 {
		t.Errorf("subscriptions %d queued %d max %d, want 4 1 1 (v2 and v3 left)", st.Subscriptions, st.Queued, st.QueuedMax)
	}
}
