package broker

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// postRefuser stands for the commands hook: it rejects server publishes to "…/post" topics
// and says so to the direct path.
type postRefuser struct{ mqtt.HookBase }

func (*postRefuser) ID() string           { return "test-post" }
func (*postRefuser) Provides(b byte) bool { return b == mqtt.OnPublish }
func (*postRefuser) PassesServerPublish(topic string) bool {
	return !strings.HasSuffix(topic, "/post")
}
func (p *postRefuser) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if !p.PassesServerPublish(pk.TopicName) {
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// recorder collects what one subscriber received, in order.
type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) add(s string) { r.mu.Lock(); r.got = append(r.got, s); r.mu.Unlock() }
func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// routeRun is the observable outcome of one run of routeTraffic.
type routeRun struct {
	inline  []string
	clients map[string][]string
	stats   Stats
	direct  int // server publishes that took the direct path
}

// routeTraffic runs the same traffic against a broker with or without the direct path: MQTT
// clients with exact, "+", "#" and shared filters that come and go between server publishes,
// a retained client publish, a kept session, and publishes a hook rejects.
func routeTraffic(t *testing.T, direct bool) routeRun {
	t.Helper()
	b := New(Config{Addr: "127.0.0.1:0", QueuePerClient: 100, MaxSubscriptions: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.noDirect = !direct
	for _, h := range []mqtt.Hook{new(auth.AllowHook), &postRefuser{}} {
		if err := b.AddHook(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.direct.Load() != direct {
		t.Fatalf("direct path enabled = %v, want %v", b.direct.Load(), direct)
	}
	inline := &recorder{}
	err := b.OnPublish(func(topic string, payload []byte) {
		if !strings.HasPrefix(topic, "$SYS/") { // mochi's, every second
			inline.add(topic + " " + string(payload))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	recs := map[string]*recorder{}
	clients := map[string]paho.Client{}
	connect := func(id string, clean bool) paho.Client {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr().String()).SetClientID(id).
			SetCleanSession(clean).SetAutoReconnect(false).SetOrderMatters(true))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		clients[id] = c
		return c
	}
	subscribe := func(id, filter string) {
		r := recs[id+" "+filter]
		if r == nil {
			r = &recorder{}
			recs[id+" "+filter] = r
		}
		tok := clients[id].Subscribe(filter, 0, func(_ paho.Client, m paho.Message) { r.add(m.Topic() + " " + string(m.Payload())) })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s %s: %v", id, filter, tok.Error())
		}
	}
	unsubscribe := func(id, filter string) {
		if tok := clients[id].Unsubscribe(filter); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("unsubscribe %s %s: %v", id, filter, tok.Error())
		}
	}
	n := 0
	publish := func(org, name string) {
		n++
		if err := b.Publish(org, name, []byte(fmt.Sprintf(`{"n":%d}`, n))); err != nil {
			t.Fatal(err)
		}
	}
	// settle waits until the broker has written everything and the clients have read it.
	settle := func() {
		last := uint64(0)
		for i := 0; i < 500; i++ {
			time.Sleep(20 * time.Millisecond)
			d := b.Stats().Delivered
			if d == last && i > 2 {
				break
			}
			last = d
		}
		time.Sleep(50 * time.Millisecond)
	}
	// until waits (10 s at most) until the broker's stats show what cond wants.
	until := func(what string, cond func(Stats) bool) {
		for deadline := time.Now().Add(10 * time.Second); !cond(b.Stats()); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	connected := func(n int) {
		until(fmt.Sprintf("%d connected clients", n), func(st Stats) bool { return st.ClientsByListener[ListenerTCP] == n })
	}
	round := func() {
		defer settle()
		for _, name := range []string{"/a", "/a/b", "/a/b/c", "/x/y", "/conv/1/post", "/service/v1"} {
			publish("shop", name)
			publish("other", name)
		}
	}
	round() // no client at all
	connect("exact", true)
	subscribe("exact", "orgs/shop/a/b")
	round()
	connect("plus", true)
	subscribe("plus", "orgs/+/a/+")
	subscribe("plus", "orgs/other/+")
	round()
	connect("hash", true)
	subscribe("hash", "orgs/shop/a/#")
	round()
	subscribe("hash", "$share/g/orgs/other/x/#")
	round()
	unsubscribe("plus", "orgs/+/a/+")
	unsubscribe("exact", "orgs/shop/a/b")
	round()
	// A retained client publish: the direct path never sees it, and later subscribers get it.
	if tok := clients["hash"].Publish("orgs/shop/r/t", 0, true, "kept"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("retained publish: %v", tok.Error())
	}
	until("the client publish", func(st Stats) bool { return st.Publishes[SourceClient] == 1 })
	connect("late", true)
	subscribe("late", "orgs/shop/r/#")
	round()
	// A kept session still receives (queued) while its client is away.
	connect("kept", false)
	subscribe("kept", "orgs/shop/x/y")
	clients["kept"].Disconnect(100)
	connected(4)
	round()
	connect("all", true)
	subscribe("all", "orgs/#") // not "#": mochi's $SYS publishes would come at any time
	round()
	for id, c := range clients {
		if id != "kept" {
			c.Disconnect(100)
		}
	}
	connected(0)
	round() // the clean sessions are gone again
	run := routeRun{inline: inline.list(), clients: map[string][]string{}, stats: b.Stats()}
	for k, r := range recs {
		// A retained message and the publishes after the SUBACK come in either order.
		run.clients[k] = slices.Sorted(slices.Values(r.list()))
	}
	run.direct = int(b.srv.Info.MessagesReceived) // both paths count every server publish here
	return run
}

// TestDirectRouteEquivalence runs the same traffic with and without the direct path and
// compares what the inline subscription and every MQTT subscriber received, the broker's
// stats (publishes by source, deliveries, drops) and mochi's count of received messages.
func TestDirectRouteEquivalence(t *testing.T) {
	via, without := routeTraffic(t, true), routeTraffic(t, false)
	if !slices.Equal(via.inline, without.inline) {
		t.Errorf("inline deliveries differ:\n direct %q\n mochi  %q", via.inline, without.inline)
	}
	if len(via.inline) == 0 {
		t.Fatal("nothing delivered")
	}
	for k, want := range without.clients {
		if got := via.clients[k]; !slices.Equal(got, want) {
			t.Errorf("%s received differ:\n direct %q\n mochi  %q", k, got, want)
		}
	}
	for _, st := range []*Stats{&via.stats, &without.stats} {
		st.ClientsByListener, st.Subscriptions, st.KeptSessions, st.Inflight, st.InflightMax = nil, 0, 0, 0, 0
	}
	if fmt.Sprint(via.stats) != fmt.Sprint(without.stats) {
		t.Errorf("stats differ:\n direct %+v\n mochi  %+v", via.stats, without.stats)
	}
	if via.direct != without.direct {
		t.Errorf("mochi's messages received: direct %d, mochi %d", via.direct, without.direct)
	}
}

// TestInterestMatches checks the interest tree against mochi's own filter matching: it may
// match more ("a/+/#" matches "a/b" as the MQTT specification says, mochi does not), never less.
func TestInterestMatches(t *testing.T) {
	filters := []string{"orgs/shop/a/b", "orgs/+/a/+", "orgs/shop/a/#", "#", "+/+", "orgs/+", "$share/g/orgs/x/#", "orgs//e", "a/+/#"}
	topics := []string{"orgs/shop/a/b", "orgs/shop/a", "orgs/other/a/c", "orgs/shop", "orgs/x/y/z", "orgs//e", "a/b", "a/b/c", "a", "b/c/d/e"}
	for _, f := range filters {
		in := newInterest()
		in.add("c", []string{f})
		for _, topic := range topics {
			want := mqtt.NewTopicsIndex()
			want.Subscribe("c", packets.Subscription{Filter: f})
			subs := want.Subscribers(topic)
			wanted := len(subs.Subscriptions) > 0 || len(subs.Shared) > 0
			// More matches only cost the direct path; fewer would lose deliveries.
			if got := in.matches(topic); wanted && !got {
				t.Errorf("filter %q topic %q: no match, but mochi matches", f, topic)
			}
		}
		in.set("c", nil)
		if len(in.root.next) != 0 || len(in.clients) != 0 {
			t.Errorf("filter %q: left %+v", f, in.root.next)
		}
	}
}

// TestDirectRouteFollowsSubscriptions: subscriptions come and go while the server publishes;
// once a SUBACK arrived, every publish reaches the subscriber.
func TestDirectRouteFollowsSubscriptions(t *testing.T) {
	b := New(Config{Addr: "127.0.0.1:0", QueuePerClient: 1000, MaxSubscriptions: 10}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := b.AddHook(new(auth.AllowHook)); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // background server publishes to the same topic
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = b.Publish("shop", "/a/b", []byte(`{}`))
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Addr().String()).SetClientID("churn").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	for i, filter := range []string{"orgs/shop/a/b", "orgs/+/a/+", "orgs/shop/#", "orgs/shop/a/b", "#"} {
		got := make(chan string, 1)
		mark := fmt.Sprintf(`{"i":%d}`, i)
		tok := c.Subscribe(filter, 0, func(_ paho.Client, m paho.Message) {
			if string(m.Payload()) == mark {
				select {
				case got <- mark:
				default:
				}
			}
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		if err := b.Publish("shop", "/a/b", []byte(mark)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a publish after the SUBACK did not arrive", filter)
		}
		if tok := c.Unsubscribe(filter); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("unsubscribe: %v", tok.Error())
		}
	}
}
