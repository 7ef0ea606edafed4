package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/convead/chat-server/auth"
)

// TestMQTTWillACL: a will is checked at CONNECT like a publish by the connecting identity. A
// client of another organisation, or a participant on a conversation topic, is refused (3.1.1:
// return code 5; 5: 0x87), so no will reaches the conversation when its socket drops.
func TestMQTTWillACL(t *testing.T) {
	e := start(t)
	m := e.mustConnect(token(t, auth.Manager, "shop", "m1"), "m1")
	m.mustSubscribe("orgs/shop/service/+")
	convID := want(t, e.post("/chat/service/v1", token(t, auth.Visitor, "shop", "v1"), nil), http.StatusCreated).obj("conversation")["id"].(string)
	conv := "orgs/shop/conversations/" + convID
	m.next() // the new conversation, on the service channel
	m.mustSubscribe(conv)

	cases := []struct{ name, tok, topic string }{
		{"other org, retained, on a conversation", token(t, auth.Visitor, "other", "b1"), conv},
		{"other org, retained, on its service channel", token(t, auth.Visitor, "other", "b1"), "orgs/shop/service/b1"},
		{"own visitor on its conversation", token(t, auth.Visitor, "shop", "v1"), conv},
		{"manager on a conversation", token(t, auth.Manager, "shop", "m2"), conv},
	}
	for _, c := range cases {
		opts := pahov3.NewClientOptions().AddBroker(e.mqtt).SetClientID("will").SetPassword(c.tok).
			SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
			SetBinaryWill(c.topic, []byte(`{"content":"forged"}`), 1, true)
		ct := pahov3.NewClient(opts).Connect()
		if !ct.WaitTimeout(10 * time.Second) {
			t.Fatalf("%s: 3.1.1 connect timed out", c.name)
		}
		if code := ct.(*pahov3.ConnectToken).ReturnCode(); code != 5 {
			t.Errorf("%s: 3.1.1 CONNACK return code %d, want 5 not authorised", c.name, code)
		}
		if code := connectV5Will(t, e, c.tok, c.topic); code != 0x87 {
			t.Errorf("%s: MQTT 5 CONNACK 0x%x, want 0x87 not authorised", c.name, code)
		}
	}
	m.none(300 * time.Millisecond)
}

// connectV5Will connects over MQTT 5 with a retained will on topic, drops the socket if
// accepted (so the will is sent), and returns the CONNACK reason code.
func connectV5Will(t *testing.T, e *env, tok, topic string) byte {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.mqtt, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "will5", CleanStart: true, KeepAlive: 30, Password: []byte(tok), PasswordFlag: true,
		WillMessage: &paho.WillMessage{Retain: true, QoS: 1, Topic: topic, Payload: []byte(`{"content":"forged"}`)}})
	if ca == nil {
		t.Fatalf("MQTT 5 connect: no CONNACK: %v", err)
	}
	return ca.ReasonCode
}
