package mqttauth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// acl allows exactly the names it lists, and records what it was asked.
type acl struct {
	sub, pub map[string]bool
	asked    []string
}

func (a *acl) CanSubscribe(_ context.Context, _ auth.Identity, name string) error {
	a.asked = append(a.asked, "sub "+name)
	if a.sub[name] {
		return nil
	}
	return errors.New("no")
}

func (a *acl) CanPublish(_ context.Context, _ auth.Identity, name string) error {
	a.asked = append(a.asked, "pub "+name)
	if a.pub[name] {
		return nil
	}
	return errors.New("no")
}

func connect(tok string) packets.Packet {
	return packets.Packet{Connect: packets.ConnectParams{Password: []byte(tok)}}
}

func tokenFor(t *testing.T, role auth.Role, sub string) string {
	tok, err := auth.Issue(secret, auth.Identity{Subject: sub, Role: role, Org: "O"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func newHook() (*Hook, *acl, *mqtt.Clients) {
	a := &acl{sub: map[string]bool{"/service/v1": true}, pub: map[string]bool{"/conversations/c/typing": true}}
	clients := mqtt.NewClients()
	return New(auth.NewVerifier(secret, 0), a, clients, slog.New(slog.NewTextHandler(io.Discard, nil))), a, clients
}

func TestAuthenticate(t *testing.T) {
	h, _, clients := newHook()
	cl := &mqtt.Client{ID: "c1"}
	if h.OnConnectAuthenticate(cl, connect("garbage")) {
		t.Fatal("accepted a garbage token")
	}
	if _, ok := h.Identity(cl); ok {
		t.Fatal("refused client has an identity")
	}
	if !h.OnConnectAuthenticate(cl, connect(tokenFor(t, auth.Manager, "m1"))) {
		t.Fatal("refused a valid token")
	}
	if id, ok := h.Identity(cl); !ok || id.Subject != "m1" || id.Role != auth.Manager {
		t.Fatalf("Identity = %v, %v", id, ok)
	}
	clients.Add(cl)
	// Another identity cannot take the id while the broker knows the client…
	intruder := &mqtt.Client{ID: "c1"}
	if h.OnConnectAuthenticate(intruder, connect(tokenFor(t, auth.Visitor, "v1"))) {
		t.Fatal("a visitor took over a manager's client id")
	}
	// …the same identity can (a reconnect), and the old connection loses its identity.
	again := &mqtt.Client{ID: "c1"}
	if !h.OnConnectAuthenticate(again, connect(tokenFor(t, auth.Manager, "m1"))) {
		t.Fatal("the owner could not reconnect")
	}
	if _, ok := h.Identity(cl); ok {
		t.Fatal("the taken-over connection still has an identity")
	}
	// A kept session stays owned after a disconnect; an ended one is forgotten.
	h.OnDisconnect(again, nil, false)
	if _, ok := h.Identity(again); !ok {
		t.Fatal("a kept session lost its owner")
	}
	h.OnDisconnect(again, nil, true)
	clients.Delete("c1")
	if _, ok := h.Identity(again); ok {
		t.Fatal("an ended session kept its owner")
	}
	if !h.OnConnectAuthenticate(&mqtt.Client{ID: "c1"}, connect(tokenFor(t, auth.Visitor, "v1"))) {
		t.Fatal("a free client id was refused")
	}
}

func TestACLCheck(t *testing.T) {
	h, a, _ := newHook()
	cl := &mqtt.Client{ID: "c1"}
	if !h.OnConnectAuthenticate(cl, connect(tokenFor(t, auth.Visitor, "v1"))) {
		t.Fatal("refused")
	}
	cases := []struct {
		topic string
		write bool
		ok    bool
	}{
		{"orgs/O/service/v1", false, true},
		{"orgs/O/service/v2", false, false},
		{"orgs/O/conversations/c/typing", true, true},
		{"orgs/O/service/v1", true, false},
		{"orgs/P/service/v1", false, false},
		{"$SYS/broker/uptime", false, false},
		{"#", false, false},
		{"orgs/O/+/v1", false, false},
	}
	for _, tc := range cases {
		if got := h.OnACLCheck(cl, tc.topic, tc.write); got != tc.ok {
			t.Errorf("OnACLCheck(%s, write=%v) = %v, want %v", tc.topic, tc.write, got, tc.ok)
		}
	}
	// Topics that are not the organisation's never reach the chat ACL.
	for _, q := range a.asked {
		if q != "sub /service/v1" && q != "sub /service/v2" && q != "pub /conversations/c/typing" && q != "pub /service/v1" {
			t.Errorf("the ACL was asked %q", q)
		}
	}
	if h.OnACLCheck(&mqtt.Client{ID: "stranger"}, "orgs/O/service/v1", false) {
		t.Error("an unauthenticated client passed the ACL")
	}
}
