package broker

import (
	"io"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
)

func TestStats(t *testing.T) {
	b := New(Config{Addr: "127.0.0.1:0", QueuePerClient: 10, MaxSubscriptions: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := b.AddHook(new(auth.AllowHook)); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan struct{}, 10)
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr().String()).SetClientID("app").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("orgs/#", 1, func(paho.Client, paho.Message) { got <- struct{}{} }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if err := b.Publish("shop", "/service/v1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	<-got
	if tok := c.Publish("orgs/shop/x", 0, false, "{}"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	<-got
	var st Stats
	deadline := time.Now().Add(10 * time.Second)
	// Both are counted just after what the client sees: the write, the routing.
	for st = b.Stats(); (st.Delivered < 2 || st.Publishes[SourceClient] < 1) && time.Now().Before(deadline); st = b.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.ClientsByListener[ListenerTCP] != 1 || st.ClientsByListener[ListenerWebsocket] != 0 || st.Subscriptions != 1 ||
		st.Publishes[SourceServer] != 1 || st.Publishes[SourceClient] != 1 || st.Delivered != 2 || st.Dropped != 0 || st.Cut != 0 || st.KeptSessions != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}
