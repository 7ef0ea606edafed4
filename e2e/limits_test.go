package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/fasthttp/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// TestRateLimits: a flooding client gets 429 (or its protocol's equivalent) while others
// keep being served.
func TestRateLimits(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) {
		c.Limits.OpensPerMinutePerIP = 4
		c.Limits.OpensPerMinutePerVisitor = 2
		c.Limits.PostsPerMinute = 3
		c.Limits.HandshakesPerMinutePerIP = 3
	})
	mTok := token(t, auth.Manager, "shop", "m1")
	e.onDuty(mTok, "m1")

	vTok := token(t, auth.Visitor, "shop", "v1")
	want(t, e.post("/chat/service/v1", vTok, nil), http.StatusCreated)
	want(t, e.post("/chat/service/v1", vTok, nil), http.StatusOK)
	r := e.post("/chat/service/v1", vTok, nil)
	if r.status != http.StatusTooManyRequests || r.errCode() != "rate_limited" {
		t.Fatalf("3rd open of one visitor: %d %s", r.status, r.raw)
	}
	conv := openConversation(t, e, token(t, auth.Visitor, "shop", "v2"), "v2")
	if r := e.post("/chat/service/v3", token(t, auth.Visitor, "shop", "v3"), nil); r.status != http.StatusTooManyRequests {
		t.Fatalf("5th open from one address: %d %s", r.status, r.raw)
	}

	// One sender floods: refused past its limit; the other side is still served.
	post := "/chat/conversation/" + conv["id"].(string)
	v2 := token(t, auth.Visitor, "shop", "v2")
	for i := 0; i < 3; i++ {
		want(t, e.post(post, v2, map[string]any{"content": fmt.Sprint("flood ", i)}), http.StatusCreated)
	}
	for i := 0; i < 5; i++ {
		if r := e.post(post, v2, map[string]any{"content": "flood"}); r.status != http.StatusTooManyRequests || r.errCode() != "rate_limited" {
			t.Fatalf("flood post: %d %s", r.status, r.raw)
		}
	}
	want(t, e.post(post, mTok, map[string]any{"content": "still served"}), http.StatusCreated)

	// Faye handshakes per address.
	for i := 0; i < 3; i++ {
		e.handshake("")
	}
	_, rs, _ := e.bayeux(`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}`)
	if rs[0]["successful"] != false || rs[0]["error"] != "429::Too many handshakes from this address" {
		t.Fatalf("4th handshake: %v", rs)
	}
}

func TestMQTTLimits(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Limits.SubscriptionsPerClient = 2
		c.Limits.ConnectionsPerIP = 3
	})
	sTok := token(t, auth.Service, "shop", "s")
	c := e.mustConnect(sTok, "subs")
	st := c.c.SubscribeMultiple(map[string]byte{"orgs/shop/a": 1, "orgs/shop/b": 1, "orgs/shop/c": 1}, nil)
	if !st.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	granted, refused := 0, 0
	for _, code := range st.(*pahov3.SubscribeToken).Result() {
		if code == 0x80 {
			refused++
		} else {
			granted++
		}
	}
	if granted != 2 || refused != 1 {
		t.Fatalf("3 subscriptions with a limit of 2: %v", st.(*pahov3.SubscribeToken).Result())
	}
	if code := c.subscribe("orgs/shop/d"); code != 0x80 {
		t.Fatalf("a 3rd subscription: 0x%x", code)
	}
	held := "orgs/shop/a"
	if st.(*pahov3.SubscribeToken).Result()[held] == 0x80 {
		held = "orgs/shop/c"
	}
	if code := c.subscribe(held); code == 0x80 {
		t.Errorf("resubscribing a held filter %s was refused: it is no new subscription", held)
	}

	// Connections per address: subs holds one; two more are allowed, the fourth is refused.
	e.mustConnect(sTok, "c2")
	e.mustConnect(sTok, "c3")
	if _, err := e.connect(sTok, "c4"); err == nil {
		t.Fatal("a 4th connection from one address was accepted")
	}
	// A failed login holds no slot: after closing one, a new client gets in.
	if _, err := e.connect("garbage", "bad"); err == nil {
		t.Fatal("bad token accepted")
	}
	c.close()
	waitFor(t, "a freed connection slot", func() bool {
		cl, err := e.connect(sTok, "c5")
		if err == nil {
			cl.close()
		}
		return err == nil
	})
}

func TestHTTPConnectionsPerIP(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Limits.ConnectionsPerIP = 3 })
	addr := strings.TrimPrefix(e.base, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	get := func(c net.Conn) string {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if line := get(c); !strings.Contains(line, "200") {
			t.Fatalf("connection %d: %q", i+1, line)
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c)
	if line := get(c); !strings.Contains(line, "429") {
		t.Fatalf("a 4th connection from one address: %q", line)
	}
}

// TestFayeLimits: batch length, frame size, channels per client and the per-client queue.
func TestFayeLimits(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) {
		c.Limits.BayeuxBatch = 5
		c.Limits.WSFrameBytes = 2048
		c.Limits.ChannelsPerClient = 3
		c.Limits.QueuePerClient = 4
	})
	sTok := token(t, auth.Service, "shop", "s")
	if status, _, _ := e.bayeux("[" + strings.Repeat(`{"channel":"/a","data":1},`, 5) + `{"channel":"/a","data":1}]`); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a batch of 6 with a limit of 5: %d", status)
	}
	cid := e.handshake(sTok)
	ext := `,"ext":{"token":"` + sTok + `"}` // clients send their token on every message
	_, r, _ := e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":["/a","/b","/c","/d"]}`)
	if r[0]["error"] != "429:/a:Too many subscriptions" {
		t.Errorf("4 channels with a limit of 3: %v", r)
	}
	_, r, _ = e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":["/a","/b","/c"]}`)
	if r[0]["successful"] != true {
		t.Fatalf("3 channels: %v", r)
	}
	// Up to the queue's worth waits for a client between connects.
	for i := 0; i < 4; i++ {
		e.bayeux(`{"channel":"/a","data":` + fmt.Sprint(i) + `,"ext":{"token":"` + sTok + `"}}`)
	}
	_, r, _ = e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"long-polling"}]`)
	if len(r) != 1+4 || r[1]["data"] != float64(0) || r[4]["data"] != float64(3) {
		t.Errorf("connect after 4 publishes with a queue of 4: %v", r)
	}
	// Beyond it, the client is ended, so that it re-handshakes and catches up instead of
	// missing messages silently.
	for i := 0; i < 5; i++ {
		e.bayeux(`{"channel":"/a","data":` + fmt.Sprint(i) + `,"ext":{"token":"` + sTok + `"}}`)
	}
	waitFor(t, "the overflowing client to be ended", func() bool {
		_, r, _ := e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"long-polling","advice":{"timeout":0}}]`)
		return r[0]["error"] == "401:"+cid+":Unknown client"
	})
	// A websocket frame over the limit closes the socket.
	ws := e.dialFaye()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/a","data":"`+strings.Repeat("x", 4096)+`"}]`))
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) && !strings.Contains(fmt.Sprint(err), "close") {
		t.Errorf("oversized frame: %v, want the socket closed", err)
	}
}

// TestSlowAndHalfOpenConnections: a request that trickles in, and a websocket that goes
// silent, are cut by timeouts instead of holding resources.
func TestSlowAndHalfOpenConnections(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) { c.HTTP.ReadTimeout = time.Second })
	addr := strings.TrimPrefix(e.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /chat/service/v1 HTTP/1.1\r\nHost: %s\r\n", addr) // and never the rest
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("a slow request held its connection %s (read timeout 1s)", took)
	}

	// Faye timings here: timeout 2s, ping 0.5s, so a websocket silent for 3.5s is cut; this
	// client answers no pings (it never reads) and sends nothing.
	ws, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	fmt.Fprintf(ws, "GET /faye HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	start = time.Now()
	for {
		if _, err := ws.Read(buf); err != nil {
			break
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("a silent websocket was held %s", took)
	}
}

// TestSlowMQTTConsumer: a client that stops reading neither stalls the publisher nor other
// subscribers; once its queue overflows it is disconnected, to reconnect and catch up.
func TestSlowMQTTConsumer(t *testing.T) {
	e := start(t, func(c *config.Config) { c.MQTT.QueuePerClient = 16 })
	sTok := token(t, auth.Service, "shop", "s")
	topic := "orgs/shop/notifications/flood"

	// The slow one: a raw connection that subscribes, then never reads again.
	slow, err := net.Dial("tcp", strings.TrimPrefix(e.mqtt, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	var buf bytes.Buffer
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: "slow",
			UsernameFlag: true, Username: []byte("s"), PasswordFlag: true, Password: []byte(sTok)}}
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	subscribe := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: topic, Qos: 0}}}
	if err := subscribe.SubscribeEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	// A normal subscriber on the same topic.
	fast := e.mustConnect(sTok, "fast")
	fast.mustSubscribe(topic)
	time.Sleep(200 * time.Millisecond) // let the slow subscription settle before the flood

	const n = 3000
	payload := strings.Repeat("x", 4096)
	pub := e.mustConnect(sTok, "pub")
	// Paced so that a client that reads keeps up with the small queue; the slow one cannot.
	for i := 0; i < n; i++ {
		pub.c.Publish(topic, 0, false, fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, payload))
		if i%8 == 7 {
			for j := 0; j < 8; j++ {
				if d := fast.next(); d.payload["i"] != float64(i-7+j) {
					t.Fatalf("the reading client got %v, want message %d", d.payload["i"], i-7+j)
				}
			}
		}
	}
	// The slow client was cut off: reading now finds the end of its connection.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := slow.Read(make([]byte, 64<<10)); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the slow client was not disconnected")
			}
			break
		}
	}
}
