package broker

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestPacketIDFromKey(t *testing.T) {
	cases := map[string]uint16{
		"IFM_integration-1:1":      1,
		"IFM_client:with:colons:7": 7,
		"IFM_c:65535":              65535,
		"IFM_c:65536":              0,
		"IFM_c:x":                  0,
		"IFM_c":                    0,
		"":                         0,
	}
	for key, want := range cases {
		if got := packetIDFromKey(key); got != want {
			t.Errorf("packetIDFromKey(%q) = %d, want %d", key, got, want)
		}
	}
}

// TestOnlyKeptSessionsAreStored: clients whose session ends with their connection leave
// nothing in the session store; a persistent one is stored with its subscription, and is
// still there after a restart.
func TestOnlyKeptSessionsAreStored(t *testing.T) {
	dir := t.TempDir()
	start := func() *Broker {
		b := New(Config{Addr: "127.0.0.1:0", QueuePerClient: 10, DataDir: dir, MaxSubscriptions: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err := b.AddHook(new(allowAll)); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := start()
	connect := func(id string, clean bool) paho.Client {
		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr().String()).SetClientID(id).SetCleanSession(clean).SetAutoReconnect(false))
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		if tok := cl.Subscribe("topic/"+id, 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", id, tok.Error())
		}
		return cl
	}
	connect("clean", true).Disconnect(100)
	connect("kept", false).Disconnect(100)
	// A client that had a kept session and comes back with a clean one clears it.
	connect("was-kept", false).Disconnect(100)
	connect("was-kept", true).Disconnect(100)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	store := new(bolt.Hook)
	if err := store.Init(&bolt.Options{Path: filepath.Join(dir, SessionsFile)}); err != nil {
		t.Fatal(err)
	}
	clients, err := store.StoredClients()
	if err != nil {
		t.Fatal(err)
	}
	subs, err := store.StoredSubscriptions()
	if err != nil {
		t.Fatal(err)
	}
	_ = store.Stop()
	var ids, filters []string
	for _, c := range clients {
		ids = append(ids, c.ID)
	}
	for _, s := range subs {
		filters = append(filters, s.Filter)
	}
	if !slices.Equal(ids, []string{"kept"}) || !slices.Equal(filters, []string{"topic/kept"}) {
		t.Fatalf("stored clients %v, subscriptions %v; want only the kept session", ids, filters)
	}

	b = start()
	defer b.Close()
	if _, ok := b.Server().Clients.Get("kept"); !ok {
		t.Fatal("the kept session is gone after a restart")
	}
}

// allowAll lets every client connect and use every topic (the server's auth hook is tested
// in plugins/mqttauth).
type allowAll struct{ mqtt.HookBase }

func (*allowAll) ID() string { return "allow-all" }
func (*allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (*allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (*allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

// TestSessionStoreWrites: while a client is connected, the store holds it only if its session
// outlives the connection (MQTT 3.1.1 clean session false, MQTT 5 session expiry > 0), or if
// its id already had such a session.
func TestSessionStoreWrites(t *testing.T) {
	s := newSessionStore()
	if err := s.Init(&bolt.Options{Path: filepath.Join(t.TempDir(), SessionsFile)}); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	client := func(id string, version byte, clean bool, expiry uint32) *mqtt.Client {
		cl := &mqtt.Client{ID: id}
		cl.Properties.ProtocolVersion, cl.Properties.Clean = version, clean
		cl.Properties.Props.SessionExpiryInterval = expiry
		return cl
	}
	sub := packets.Packet{Filters: packets.Subscriptions{{Filter: "t"}}}
	for _, c := range []struct {
		cl   *mqtt.Client
		want bool
	}{
		{client("v4-clean", 4, true, 0), false},
		{client("v4-kept", 4, false, 0), true},
		{client("v5-no-expiry", 5, false, 0), false},
		{client("v5-expiry", 5, true, 60), true},
		{client("v4-kept", 4, true, 0), true}, // back with a clean session: mochi's writes clear it
	} {
		s.OnSessionEstablished(c.cl, packets.Packet{})
		s.OnSubscribed(c.cl, sub, []byte{0})
		clients, err := s.StoredClients()
		if err != nil {
			t.Fatal(err)
		}
		subs, err := s.StoredSubscriptions()
		if err != nil {
			t.Fatal(err)
		}
		stored := slices.ContainsFunc(clients, func(sc storage.Client) bool { return sc.ID == c.cl.ID && sc.Clean == c.cl.Properties.Clean })
		subscribed := slices.ContainsFunc(subs, func(ss storage.Subscription) bool { return ss.Client == c.cl.ID })
		if stored != c.want || subscribed != c.want {
			t.Errorf("%s (clean %v): client stored %v, subscription stored %v; want %v", c.cl.ID, c.cl.Properties.Clean, stored, subscribed, c.want)
		}
	}
}
