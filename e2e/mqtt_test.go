package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// TestPersistentSessionSurvivesRestart: an integration with a persistent session is offline
// while notifications are published, the server restarts, and on reconnecting it receives
// every QoS 1 notification once, in order.
func TestPersistentSessionSurvivesRestart(t *testing.T) {
	e := start(t)
	sTok := token(t, auth.Service, "shop", "integration")
	got := make(chan pahov3.Message, 100)
	connect := func(e *env) pahov3.Client {
		opts := pahov3.NewClientOptions().AddBroker(e.mqtt).SetClientID("integration-1").SetUsername("integration").SetPassword(sTok).
			SetCleanSession(false).SetAutoReconnect(false).SetOrderMatters(true).
			SetDefaultPublishHandler(func(_ pahov3.Client, m pahov3.Message) { got <- m })
		c := pahov3.NewClient(opts)
		if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("connect: %v", tk.Error())
		}
		return c
	}
	c := connect(e)
	if st := c.Subscribe("orgs/shop/notifications/+", 1, nil); !st.WaitTimeout(5*time.Second) || st.(*pahov3.SubscribeToken).Result()["orgs/shop/notifications/+"] != 1 {
		t.Fatal("subscribe refused")
	}
	c.Disconnect(100)

	const n = 20
	for i := 1; i <= n; i++ {
		want(t, e.post(fmt.Sprint("/chat/notifications/v", i), sTok, map[string]any{"notification": map[string]any{"n": i}}), http.StatusCreated)
	}
	e = e.restart()
	c = connect(e)
	defer c.Disconnect(100)
	seen := map[int]int{}
	for i := 1; i <= n; i++ {
		select {
		case m := <-got:
			var p struct {
				Notification struct{ N int }
			}
			_ = json.Unmarshal(m.Payload(), &p)
			if p.Notification.N != i || m.Topic() != fmt.Sprint("orgs/shop/notifications/v", i) {
				t.Fatalf("message %d: %s %s (duplicate=%v)", i, m.Topic(), m.Payload(), m.Duplicate())
			}
			seen[p.Notification.N]++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d queued notifications after the restart", i-1, n)
		}
	}
	// Still subscribed after the restart: a new notification arrives too.
	want(t, e.post("/chat/notifications/v9", sTok, map[string]any{"notification": map[string]any{"n": 9}}), http.StatusCreated)
	select {
	case m := <-got:
		if !strings.HasSuffix(m.Topic(), "/v9") {
			t.Fatalf("after the restart: %s", m.Topic())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the restored subscription delivers nothing")
	}
	select {
	case m := <-got:
		t.Fatalf("a duplicate arrived: %s %s", m.Topic(), m.Payload())
	case <-time.After(300 * time.Millisecond):
	}
}

// v5 is an MQTT 5 client (paho.golang) that records publishes and the server's disconnect.
type v5 struct {
	c    *paho.Client
	got  chan *paho.Publish
	held []*paho.Publish // received, not yet asked for
	bye  chan *paho.Disconnect
	t    *testing.T
}

func dialV5(t *testing.T, e *env, tok, clientID string) (*v5, *paho.Connack, error) {
	addr := strings.TrimPrefix(e.mqtt, "tcp://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	v := &v5{got: make(chan *paho.Publish, 100), bye: make(chan *paho.Disconnect, 1), t: t}
	v.c = paho.NewClient(paho.ClientConfig{
		Conn:               conn,
		OnPublishReceived:  []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) { v.got <- r.Packet; return true, nil }},
		OnServerDisconnect: func(d *paho.Disconnect) { v.bye <- d },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := v.c.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30, Password: []byte(tok), PasswordFlag: true})
	if err == nil {
		t.Cleanup(func() { _ = v.c.Disconnect(&paho.Disconnect{}) })
	}
	return v, ca, err
}

func (v *v5) subscribe(topic string) byte {
	v.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := v.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}})
	if sa == nil {
		v.t.Fatalf("subscribe %s: %v", topic, err)
	}
	return sa.Reasons[0]
}

func (v *v5) publish(topic string, payload any) byte {
	v.t.Helper()
	data, _ := json.Marshal(payload)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, err := v.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: data})
	if pr == nil {
		v.t.Fatalf("publish %s: %v", topic, err)
	}
	return pr.ReasonCode
}

// next returns the next publish on topic; publishes on other topics wait for their turn.
func (v *v5) next(topic string) map[string]any {
	v.t.Helper()
	decode := func(p *paho.Publish) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(p.Payload, &m)
		return m
	}
	for i, p := range v.held {
		if p.Topic == topic {
			v.held = append(v.held[:i], v.held[i+1:]...)
			return decode(p)
		}
	}
	for {
		select {
		case p := <-v.got:
			if p.Topic != topic {
				v.held = append(v.held, p)
				continue
			}
			return decode(p)
		case <-time.After(10 * time.Second):
			v.t.Fatalf("nothing on %s within 10s", topic)
			return nil
		}
	}
}

// TestMQTT5AppWithFayeWidget: a native app (MQTT 5 + REST) is the manager, a widget (Faye
// long-polling) the visitor; they chat both ways, the app posting by command topic.
func TestMQTT5AppWithFayeWidget(t *testing.T) {
	e := fayeEnv(t)
	mTok, vTok := token(t, auth.Manager, "shop", "m1"), token(t, auth.Visitor, "shop", "v1")
	app, _, err := dialV5(t, e, mTok, "app-m1")
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"orgs/shop/service/+", "orgs/shop/replies/manager/m1"} {
		if code := app.subscribe(topic); code != 1 {
			t.Fatalf("subscribe %s: 0x%x", topic, code)
		}
	}
	// The widget's Faye session, long-polling.
	cid := e.handshake(vTok)
	ext := `,"ext":{"token":"` + vTok + `"}` // clients send their token on every message
	e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/v1"}`)
	poll := func() []map[string]any {
		_, r, _ := e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"long-polling"}]`)
		return r[1:]
	}
	conv := openConversation(t, e, vTok, "v1")
	convID := conv["id"].(string)
	if m := app.next("orgs/shop/service/v1"); m["conversation"].(map[string]any)["id"] != convID {
		t.Fatalf("app got %v", m)
	}
	if d := poll(); len(d) != 1 || d[0]["channel"] != "/service/v1" {
		t.Fatalf("widget got %v", d)
	}
	e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/conversations/` + convID + `"}`)
	topic := "orgs/shop/conversations/" + convID
	if code := app.subscribe(topic); code != 1 {
		t.Fatalf("subscribe %s: 0x%x", topic, code)
	}

	// App → widget by command topic: acknowledged once stored, answered, delivered.
	if code := app.publish(topic+"/post", map[string]any{"content": "Hello from the app", "client_message_id": "a-1"}); code != 0 {
		t.Fatalf("PUBACK reason 0x%x", code)
	}
	answer := app.next("orgs/shop/replies/manager/m1")
	if answer["ok"] != true || answer["created"] != true || answer["client_message_id"] != "a-1" || answer["message"].(map[string]any)["content"] != "Hello from the app" {
		t.Fatalf("answer = %v", answer)
	}
	if m := app.next(topic); m["message"].(map[string]any)["content"] != "Hello from the app" {
		t.Fatalf("app's own message event: %v", m)
	}
	if d := poll(); len(d) != 1 || d[0]["data"].(map[string]any)["message"].(map[string]any)["content"] != "Hello from the app" {
		t.Fatalf("widget got %v", d)
	}
	// A retry of the same command is idempotent.
	app.publish(topic+"/post", map[string]any{"content": "Hello from the app", "client_message_id": "a-1"})
	if answer := app.next("orgs/shop/replies/manager/m1"); answer["ok"] != true || answer["created"] != nil {
		t.Fatalf("retry answer = %v", answer)
	}
	// Widget → app through the REST API.
	want(t, e.post("/chat/conversation/"+convID, vTok, map[string]any{"content": "Hi app"}), http.StatusCreated)
	if m := app.next(topic); m["message"].(map[string]any)["content"] != "Hi app" {
		t.Fatalf("app got %v", m)
	}
	// A refused command is acknowledged and answered with the reason.
	app.publish(topic+"/post", map[string]any{"content": "  "})
	if answer := app.next("orgs/shop/replies/manager/m1"); answer["ok"] != false || answer["error"].(map[string]any)["code"] != "invalid_content" {
		t.Fatalf("answer = %v", answer)
	}
	app.publish(topic+"/post", "not an object")
	if answer := app.next("orgs/shop/replies/manager/m1"); answer["error"].(map[string]any)["code"] != "invalid_json" {
		t.Fatalf("answer = %v", answer)
	}
	hist := want(t, e.post("/chat/conversation/"+convID+"/messages", mTok, nil), http.StatusOK)
	if n := len(hist.body["messages"].([]any)); n != 2 {
		t.Fatalf("history has %d messages, want 2", n)
	}
}

// TestMQTT5Refusals: what MQTT 5 clients are told when they overstep.
func TestMQTT5Refusals(t *testing.T) {
	e := start(t)
	e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	convID := openConversation(t, e, token(t, auth.Visitor, "shop", "v1"), "v1")["id"].(string)
	v, _, err := dialV5(t, e, token(t, auth.Visitor, "shop", "v2"), "v2")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"orgs/shop/#", "orgs/shop/service/+", "$SYS/#", "orgs/other/service/v2", "orgs/shop/replies/manager/m1", "orgs/shop/conversations/" + convID} {
		if code := v.subscribe(f); code != 0x87 {
			t.Errorf("subscribe %s: 0x%x, want 0x87 not authorized", f, code)
		}
	}
	for _, topic := range []string{"orgs/shop/conversations/" + convID, "orgs/shop/conversations/" + convID + "/post", "orgs/shop/service/v2"} {
		if code := v.publish(topic, map[string]any{"content": "forged"}); code != 0x87 {
			t.Errorf("publish %s: 0x%x, want 0x87", topic, code)
		}
	}
	// A forged or expired token is refused at CONNECT.
	for _, tok := range []string{"garbage", token(t, auth.Visitor, "shop", "v1", -2*time.Hour)} {
		if _, ca, err := dialV5(t, e, tok, "bad"); err == nil {
			t.Errorf("connect accepted: %+v", ca)
		}
	}
}

// TestTokenExpiryEndsSession: a connection ends when its token does, with MQTT 5's reason code
// "maximum connect time".
func TestTokenExpiryEndsSession(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Auth.Leeway = 0 })
	short, _ := auth.Issue([]byte(secret), auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "shop"}, 2*time.Second, time.Now())
	v, _, err := dialV5(t, e, short, "short-lived")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-v.bye:
		if d.ReasonCode != 0xA0 {
			t.Fatalf("disconnect reason 0x%x, want 0xA0", d.ReasonCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection outlived its token")
	}
}

// TestMQTTOverWebsocket: MQTT on the HTTP port at /mqtt, under the origin allow-list.
func TestMQTTOverWebsocket(t *testing.T) {
	e := start(t, func(c *config.Config) { c.HTTP.AllowedOrigins = []string{"https://shop.example"} })
	wsURL := strings.Replace(e.base, "http", "ws", 1) + "/mqtt"
	opts := pahov3.NewClientOptions().AddBroker(wsURL).SetClientID("ws-m1").SetUsername("m1").SetPassword(token(t, auth.Manager, "shop", "m1")).SetAutoReconnect(false)
	got := make(chan pahov3.Message, 10)
	c := pahov3.NewClient(opts)
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("connect over websocket: %v", tk.Error())
	}
	defer c.Disconnect(100)
	if st := c.Subscribe("orgs/shop/service/+", 1, func(_ pahov3.Client, m pahov3.Message) { got <- m }); !st.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	want(t, e.post("/chat/service/v1", token(t, auth.Visitor, "shop", "v1"), nil), http.StatusCreated)
	select {
	case m := <-got:
		if m.Topic() != "orgs/shop/service/v1" {
			t.Fatalf("got %s", m.Topic())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered over websocket")
	}
	dialer := websocket.Dialer{Subprotocols: []string{"mqtt"}}
	_, resp, err := dialer.Dial(wsURL, http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upgrade from a foreign origin: %v %v", resp, err)
	}
}

// TestMQTTOverTLS: with a certificate configured, MQTT speaks TLS only.
func TestMQTTOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	e := start(t, func(c *config.Config) { c.MQTT.TLSCertFile, c.MQTT.TLSKeyFile = certFile, keyFile })
	addr := strings.TrimPrefix(e.mqtt, "tcp://")
	opts := pahov3.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("tls-1").SetUsername("v1").SetPassword(token(t, auth.Visitor, "shop", "v1")).
		SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}).SetAutoReconnect(false)
	c := pahov3.NewClient(opts)
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("connect over TLS: %v", tk.Error())
	}
	c.Disconnect(100)
	if _, err := e.connect(token(t, auth.Visitor, "shop", "v1"), "plain"); err == nil {
		t.Fatal("plain MQTT accepted on the TLS port")
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chat test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
