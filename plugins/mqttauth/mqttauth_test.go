package mqttauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/chat"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// acl allows exactly the names it lists, and records what it was asked; while down, its store
// is unavailable and it decides nothing.
type acl struct {
	sub, pub map[string]bool
	asked    []string
	down     bool
}

var errStoreDown = &chat.Error{Kind: chat.KindUnavailable, Code: "store_unavailable", Message: "the message store is unavailable, retry later"}

func (a *acl) CanSubscribe(_ context.Context, _ auth.Identity, name string) error {
	a.asked = append(a.asked, "sub "+name)
	switch {
	case a.down:
		return errStoreDown
	case a.sub[name]:
		return nil
	}
	return chat.Forbidden("no")
}

func (a *acl) CanPublish(_ context.Context, _ auth.Identity, name string) error {
	a.asked = append(a.asked, "pub "+name)
	switch {
	case a.down:
		return errStoreDown
	case a.pub[name]:
		return nil
	}
	return chat.Forbidden("no")
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

type disconnects struct {
	mu  sync.Mutex
	got map[string]packets.Code
}

func (d *disconnects) disconnect(cl *mqtt.Client, code packets.Code) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got[cl.ID] = code
	return nil
}

func (d *disconnects) of(id string) (packets.Code, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.got[id]
	return c, ok
}

func newHook() (*Hook, *acl, *mqtt.Clients, *disconnects) {
	a := &acl{sub: map[string]bool{"/service/v1": true}, pub: map[string]bool{"/conversations/c/typing": true}}
	clients := mqtt.NewClients()
	d := &disconnects{got: map[string]packets.Code{}}
	return New(auth.NewVerifier(auth.Config{Secret: secret}), a, clients, d.disconnect, func(*mqtt.Client, packets.Code, bool, *packets.Properties) error { return nil }, slog.New(slog.NewTextHandler(io.Discard, nil))), a, clients, d
}

func TestAuthenticate(t *testing.T) {
	h, _, clients, _ := newHook()
	cl := &mqtt.Client{ID: "c1"}
	cl.Properties.Username = []byte("manager:O:m1") // a username claiming an identity counts for nothing
	if h.OnConnectAuthenticate(cl, connect("garbage")) {
		t.Fatal("accepted a garbage token")
	}
	if !h.OnConnectAuthenticate(cl, connect(tokenFor(t, auth.Visitor, "v1"))) {
		t.Fatal("refused a valid token")
	}
	if id, ok := h.Identity(cl); !ok || id != (auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "O"}) {
		t.Fatalf("Identity = %v, %v: the token, not the username, decides", id, ok)
	}
	clients.Add(cl)
	// Another identity cannot take the id while the broker knows the client (connected or kept)…
	if h.OnConnectAuthenticate(&mqtt.Client{ID: "c1"}, connect(tokenFor(t, auth.Manager, "m1"))) {
		t.Fatal("another identity took over the client id")
	}
	// …its owner can (a reconnect).
	if !h.OnConnectAuthenticate(&mqtt.Client{ID: "c1"}, connect(tokenFor(t, auth.Visitor, "v1"))) {
		t.Fatal("the owner could not reconnect")
	}
	// A stored session restored after a restart carries its owner in its username.
	restored := &mqtt.Client{ID: "kept"}
	restored.Properties.Username = []byte("service:O:integration")
	clients.Add(restored)
	if id, ok := h.Identity(restored); !ok || id.Role != auth.Service {
		t.Fatalf("restored session identity = %v, %v", id, ok)
	}
	if h.OnConnectAuthenticate(&mqtt.Client{ID: "kept"}, connect(tokenFor(t, auth.Visitor, "v1"))) {
		t.Fatal("a visitor took over a restored session")
	}
	clients.Delete("c1")
	if !h.OnConnectAuthenticate(&mqtt.Client{ID: "c1"}, connect(tokenFor(t, auth.Manager, "m1"))) {
		t.Fatal("a free client id was refused")
	}
	if _, ok := h.Identity(&mqtt.Client{ID: "x", Net: mqtt.ClientConnection{Inline: true}}); ok {
		t.Fatal("the inline client has an identity")
	}
}

func TestExpiry(t *testing.T) {
	h, _, _, d := newHook()
	short, err := auth.Issue(secret, auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "O"}, 2*time.Second, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cl := &mqtt.Client{ID: "short"}
	if !h.OnConnectAuthenticate(cl, connect(short)) {
		t.Fatal("refused")
	}
	long := &mqtt.Client{ID: "long"}
	if !h.OnConnectAuthenticate(long, connect(tokenFor(t, auth.Visitor, "v2"))) {
		t.Fatal("refused")
	}
	gone := &mqtt.Client{ID: "gone"}
	if !h.OnConnectAuthenticate(gone, connect(short)) {
		t.Fatal("refused")
	}
	h.OnDisconnect(gone, nil, true) // disconnected before its token expired: no timer left
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, ok := d.of("short"); ok {
			if code != packets.ErrMaxConnectTime {
				t.Fatalf("disconnect code = %v", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the client was not disconnected when its token expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, ok := d.of("long"); ok {
		t.Error("a client with a valid token was disconnected")
	}
	if _, ok := d.of("gone"); ok {
		t.Error("a departed client's timer fired")
	}
}

func TestACLCheck(t *testing.T) {
	h, a, _, _ := newHook()
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

func TestWillCheckedAtConnect(t *testing.T) {
	h, a, _, _ := newHook()
	a.pub["/notifications/v1"] = true
	var acked []packets.Code
	h.connack = func(_ *mqtt.Client, code packets.Code, _ bool, _ *packets.Properties) error {
		acked = append(acked, code)
		return nil
	}
	will := func(tok, topic string) packets.Packet {
		pk := connect(tok)
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillRetain = true, topic, true
		return pk
	}
	tok := tokenFor(t, auth.Visitor, "v1")
	for _, topic := range []string{
		"orgs/O/conversations/c/typing", // the ACL allows a publish there, but a conversation never takes a will
		"orgs/O/conversations/c",
		"orgs/A/notifications/v1", // another organisation
		"orgs/O/service/v2",       // refused by the ACL
		"$SYS/x",
	} {
		acked = nil
		if err := h.OnConnect(&mqtt.Client{ID: "w"}, will(tok, topic)); !errors.Is(err, packets.ErrNotAuthorized) || len(acked) != 1 || acked[0] != packets.ErrNotAuthorized {
			t.Errorf("will on %s: %v, CONNACK %v; want refused 0x87", topic, err, acked)
		}
	}
	acked = nil
	if err := h.OnConnect(&mqtt.Client{ID: "w"}, will(tok, "orgs/O/notifications/v1")); err != nil || len(acked) != 0 {
		t.Errorf("a will the identity may publish: %v, CONNACK %v", err, acked)
	}
	if err := h.OnConnect(&mqtt.Client{ID: "w"}, will("garbage", "orgs/O/conversations/c")); err != nil {
		t.Errorf("a bad token is left to OnConnectAuthenticate, got %v", err)
	}
}

// TestWillStoreDown: a will the ACL could not decide, the store being down, is refused as
// "server unavailable" (3.1.1 return code 3), which a client retries, not as "not authorised",
// and logged at warn.
func TestWillStoreDown(t *testing.T) {
	h, a, _, _ := newHook()
	a.down = true
	var logs bytes.Buffer
	h.log = slog.New(slog.NewTextHandler(&logs, nil))
	var acked []packets.Code
	h.connack = func(_ *mqtt.Client, code packets.Code, _ bool, _ *packets.Properties) error {
		acked = append(acked, code)
		return nil
	}
	pk := connect(tokenFor(t, auth.Visitor, "v1"))
	pk.Connect.WillFlag, pk.Connect.WillTopic = true, "orgs/O/notifications/v1"
	if err := h.OnConnect(&mqtt.Client{ID: "w"}, pk); !errors.Is(err, packets.ErrServerUnavailable) || len(acked) != 1 || acked[0] != packets.ErrServerUnavailable {
		t.Fatalf("will during an outage: %v, CONNACK %v; want refused 0x88", err, acked)
	}
	if got := logs.String(); !strings.Contains(got, `level=WARN msg="mqtt connect refused: will not allowed"`) || !strings.Contains(got, "store_unavailable") {
		t.Fatalf("log %q", got)
	}
	logs.Reset()
	cl := &mqtt.Client{ID: "s"}
	cl.Properties.Username = []byte(auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "O"}.Key())
	if h.OnACLCheck(cl, "orgs/O/service/v1", false) {
		t.Fatal("an ACL check the store could not decide was allowed")
	}
	if got := logs.String(); !strings.Contains(got, `level=WARN msg="mqtt acl check failed"`) || !strings.Contains(got, "topic=orgs/O/service/v1") {
		t.Fatalf("log %q", got)
	}
}

func TestRefusalLogThrottle(t *testing.T) {
	var th logThrottle
	now := time.Unix(1000, 0)
	for i := 0; i < refusalLogsPerSecond; i++ {
		if ok, _ := th.allow(now); !ok {
			t.Fatalf("line %d within the second refused", i)
		}
	}
	for i := 0; i < 5; i++ {
		if ok, _ := th.allow(now); ok {
			t.Fatal("a line past the limit was allowed")
		}
	}
	if ok, held := th.allow(now.Add(time.Second)); !ok || held != 5 {
		t.Fatalf("next second: %v, suppressed %d; want true, 5", ok, held)
	}
}
