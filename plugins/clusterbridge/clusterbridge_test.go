package clusterbridge

import (
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

type fakeNode struct {
	mu        sync.Mutex
	forwarded []string
	filters   map[string]int
}

func (f *fakeNode) Forward(topic string, _ []byte, _ byte, _ bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forwarded = append(f.forwarded, topic)
}

func (f *fakeNode) AddFilter(filter string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters[filter]++
	return f.filters[filter] == 1
}

func (f *fakeNode) RemoveFilter(filter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.filters[filter]--; f.filters[filter] == 0 {
		delete(f.filters, filter)
	}
}

func (f *fakeNode) WaitInterest() {}

func (f *fakeNode) state() ([]string, map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	filters := map[string]int{}
	for k, v := range f.filters {
		filters[k] = v
	}
	return slices.Clone(f.forwarded), filters
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHook(t *testing.T) {
	srv := mqtt.New(&mqtt.Options{InlineClient: true})
	node := &fakeNode{filters: map[string]int{}}
	h := New(node, srv)
	for _, hook := range []mqtt.Hook{new(auth.AllowHook), h} {
		if err := srv.AddHook(hook, nil); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(listeners.NewNet("t", ln)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	var mu sync.Mutex
	var local []string
	if err := srv.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		mu.Lock()
		local = append(local, pk.TopicName)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	// The server's own subscription is not interest of a client.
	if _, filters := node.state(); len(filters) != 0 {
		t.Fatalf("inline subscription reported as interest: %v", filters)
	}

	// A server-side publish is forwarded; an injected one is delivered locally only.
	if err := srv.Publish("orgs/o/service/v", []byte("{}"), false, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.Inject("orgs/o/service/w", []byte("{}"), 1, false); err != nil {
		t.Fatal(err)
	}
	if err := srv.Publish("$SYS/x", []byte("{}"), false, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both delivered locally", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(local, "orgs/o/service/w") && slices.Contains(local, "orgs/o/service/v")
	})
	if fwd, _ := node.state(); !slices.Equal(fwd, []string{"orgs/o/service/v"}) {
		t.Fatalf("forwarded %v, want only the local publish", fwd)
	}

	// A client's subscriptions are interest while held; its publishes are forwarded.
	opts := paho.NewClientOptions().AddBroker("tcp://" + ln.Addr().String()).SetClientID("c1").SetAutoReconnect(false)
	c := paho.NewClient(opts)
	if tk := c.Connect(); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("connect: %v", tk.Error())
	}
	for _, f := range []string{"orgs/o/service/+", "orgs/o/conversations/#"} {
		if tk := c.Subscribe(f, 1, nil); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
			t.Fatalf("subscribe: %v", tk.Error())
		}
	}
	if _, filters := node.state(); len(filters) != 2 || filters["orgs/o/service/+"] != 1 {
		t.Fatalf("interest %v after subscribing", filters)
	}
	if tk := c.Unsubscribe("orgs/o/service/+"); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("unsubscribe: %v", tk.Error())
	}
	if _, filters := node.state(); len(filters) != 1 || filters["orgs/o/conversations/#"] != 1 {
		t.Fatalf("interest %v after unsubscribing", filters)
	}
	if tk := c.Publish("orgs/o/conversations/c/typing", 1, false, "{}"); !tk.WaitTimeout(5*time.Second) || tk.Error() != nil {
		t.Fatalf("publish: %v", tk.Error())
	}
	waitFor(t, "client publish forwarded", func() bool {
		fwd, _ := node.state()
		return slices.Contains(fwd, "orgs/o/conversations/c/typing")
	})
	c.Disconnect(100)
	waitFor(t, "interest gone with the clean session", func() bool {
		_, filters := node.state()
		return len(filters) == 0
	})
}
