package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

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
	m := e.mustConnect(mTok, "m1")
	m.mustSubscribe("orgs/shop/service/+")

	vTok := token(t, auth.Visitor, "shop", "v1")
	want(t, e.post("/chat/service/v1", vTok, nil), http.StatusCreated)
	want(t, e.post("/chat/service/v1", vTok, nil), http.StatusOK)
	r := e.post("/chat/service/v1", vTok, nil)
	if r.status != http.StatusTooManyRequests || r.errCode() != "rate_limited" {
		t.Fatalf("3rd open of one visitor: %d %s", r.status, r.raw)
	}
	conv := want(t, e.post("/chat/service/v2", token(t, auth.Visitor, "shop", "v2"), nil), http.StatusCreated).obj("conversation")
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
