package faye

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/faye/bayeux"
)

type permissive struct{}

func (permissive) CanSubscribe(context.Context, auth.Identity, string) error { return nil }
func (permissive) CanPublish(context.Context, auth.Identity, string) error   { return nil }
func (permissive) MayReceive(auth.Identity, string) bool                     { return true }
func (permissive) Subscribed(auth.Identity, string, string)                  {}
func (permissive) Unsubscribed(auth.Identity, string, string)                {}
func (permissive) Gone(string)                                               {}
func (permissive) Publish(string, string, []byte) error                      { return nil }
func (permissive) Verify(string) (auth.Identity, error) {
	return auth.Identity{Subject: "s", Role: auth.Service, Org: "shop"}, nil
}

type countingInterest map[string]int

func (c countingInterest) Add(org, name string)    { c[org+" "+name]++ }
func (c countingInterest) Remove(org, name string) { c[org+" "+name]-- }

// TestSubscribeDuplicateChannelCountsOnce: a subscribe naming a channel twice must add one
// cluster interest, or the unsubscribe (which removes one) leaves the node subscribed forever.
func TestSubscribeDuplicateChannelCountsOnce(t *testing.T) {
	interest := countingInterest{}
	e := New(Config{Timeout: time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10, AnonymousOrg: "shop", Interest: interest},
		permissive{}, nil, permissive{}, permissive{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s := newSession(newClientID(""), time.Now())
	e.sessions[s.id] = s
	sub := bayeux.Message{Channel: bayeux.Subscribe, ClientID: s.id, Subscription: json.RawMessage(`["/a","/a"]`)}
	if r := e.subscribe(context.Background(), sub); !r.Successful {
		t.Fatalf("subscribe: %+v", r)
	}
	if got := interest["shop /a"]; got != 1 {
		t.Fatalf("interest after subscribing twice in one message = %d, want 1", got)
	}
	unsub := bayeux.Message{Channel: bayeux.Unsubscribe, ClientID: s.id, Subscription: json.RawMessage(`"/a"`)}
	if r := e.unsubscribe(unsub); !r.Successful {
		t.Fatalf("unsubscribe: %+v", r)
	}
	if got := interest["shop /a"]; got != 0 {
		t.Fatalf("interest after unsubscribing = %d, want 0", got)
	}
}
