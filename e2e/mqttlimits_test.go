package e2e

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/internal/mqttwire"
)

// TestMQTTWillACL: a will is checked at CONNECT like a publish by the connecting identity. A
// client of another organisation, or a participant on a conversation topic, is refused (3.1.1:
// return code 5; 5: 0x87), so no will reaches the conversation when its socket drops.
func TestMQTTWillACL(t *testing.T) {
	e := start(t)
	m := e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	convID := openConversation(t, e, token(t, auth.Visitor, "shop", "v1"), "v1")["id"].(string)
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

// hugeHeader is a fixed header (CONNECT) announcing MQTT's largest remaining length, 256 MB:
// the 5 bytes that made the server allocate the whole packet before reading it.
var hugeHeader = []byte{0x10, 0xff, 0xff, 0xff, 0x7f}

// closedWithin reports whether the server closes conn within d (reading whatever it sends).
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 64)
	for {
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestMQTTPacketSizeAndConnectDeadline: a packet larger than mqtt.max_packet_size ends the
// connection at its fixed header, before its bytes are buffered, over TCP and over websocket
// (the packet spread over several frames); MQTT 5 clients are told the limit in CONNACK; a
// socket that sends no CONNECT within mqtt.connect_timeout is closed; and sockets still
// before their CONNECT count in the per-address connection limit.
func TestMQTTPacketSizeAndConnectDeadline(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.MQTT.MaxPacketSize = 4096
		c.MQTT.ConnectTimeout = 2 * time.Second
		c.Limits.ConnectionsPerIP = 6
	})
	addr := strings.TrimPrefix(e.mqtt, "tcp://")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 4; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(hugeHeader); err != nil {
			t.Fatal(err)
		}
		if !closedWithin(conn, 500*time.Millisecond) {
			t.Errorf("socket %d announcing a 256 MB packet was not closed at once", i)
		}
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("heap in use before 4 huge headers: %d KiB, after: %d KiB", before.HeapInuse>>10, after.HeapInuse>>10)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB under 4 huge headers", grown>>20)
	}

	// Over websocket: a 5000-byte PUBLISH after a good CONNECT, in three frames.
	wsURL := strings.Replace(e.base, "http", "ws", 1) + "/mqtt"
	ws, _, err := (&websocket.Dialer{Subprotocols: []string{"mqtt"}}).Dial(wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteMessage(websocket.BinaryMessage, connectPacket(token(t, auth.Service, "shop", "s"))); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := ws.ReadMessage(); err != nil || len(ack) != 4 || ack[3] != 0 {
		t.Fatalf("CONNACK over websocket: % x %v", ack, err)
	}
	publish := append([]byte{0x30, 0x88, 0x27, 0, 12}, "orgs/shop/ab"...) // remaining length 5000
	for _, frame := range [][]byte{publish[:2], publish[2:], make([]byte, 1000)} {
		if err := ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
			break
		}
	}
	_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("a 5000-byte packet over websocket did not end the connection")
			}
			break
		}
	}

	// MQTT 5 clients learn the limit.
	v, ca, err := dialV5(t, e, token(t, auth.Service, "shop", "s5"), "s5")
	if err != nil {
		t.Fatal(err)
	}
	if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != 4096 {
		t.Errorf("CONNACK maximum packet size: %+v", ca.Properties)
	}
	_ = v
	// The websocket's slot is freed when the server has finished with it.
	waitFor(t, "only the MQTT 5 client's socket open", func() bool { return e.mustScrape().value("chat_mqtt_sockets") == 1 })

	// Sockets that send nothing hold a slot until the deadline closes them.
	refused := e.mustScrape().value("chat_mqtt_refused_sockets_total", "limit", "connections_per_ip")
	var idle []net.Conn
	for i := 0; i < 5; i++ { // s5 holds the 6th
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idle = append(idle, conn)
	}
	waitFor(t, "6 sockets open", func() bool { return e.mustScrape().value("chat_mqtt_sockets") == 6 })
	if _, err := e.connect(token(t, auth.Service, "shop", "s"), "over"); err == nil {
		t.Error("a connection past the limit was accepted while 5 sockets sat before their CONNECT")
	}
	if got := e.mustScrape().value("chat_mqtt_refused_sockets_total", "limit", "connections_per_ip"); got <= refused {
		t.Errorf("chat_mqtt_refused_sockets_total{limit=connections_per_ip} = %v after a refusal, was %v", got, refused)
	}
	for i, conn := range idle {
		if !closedWithin(conn, 3*time.Second) {
			t.Errorf("idle socket %d still open past mqtt.connect_timeout", i)
		}
	}
	waitFor(t, "slots freed by the CONNECT deadline", func() bool {
		cl, err := e.connect(token(t, auth.Service, "shop", "s"), "after")
		if err == nil {
			cl.close()
		}
		return err == nil
	})
}

// connectPacket is an MQTT 3.1.1 CONNECT with password tok, clean session, keep-alive 30 s.
func connectPacket(tok string) []byte {
	return mqttwire.Connect(mqttwire.CleanSession|mqttwire.PasswordFlag, 30*time.Second, "w", tok)
}

// rawConnect opens a socket, sends a CONNECT with password tok and returns the CONNACK's
// return code, or -1 when the server closed the socket without one.
func rawConnect(t *testing.T, addr, tok string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(connectPacket(tok)); err != nil {
		return -1
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return -1
	}
	return int(ack[3])
}

// TestMQTTConnectFloods: failed CONNECTs are logged at most 10 lines a second overall, the
// next line counting the suppressed ones; and an address that opens more sockets a minute than
// limits.mqtt_connects_per_minute_per_ip has the next ones closed before their CONNECT.
func TestMQTTConnectFloods(t *testing.T) {
	var logs syncBuffer
	e := startLogged(t, testConfig(t), slog.New(slog.NewTextHandler(&logs, nil)))
	addr := strings.TrimPrefix(e.mqtt, "tcp://")
	began := time.Now()
	for i := 0; i < 200; i++ {
		if code := rawConnect(t, addr, "garbage"); code != 5 {
			t.Fatalf("CONNECT %d with a bad token: return code %d, want 5 not authorised", i, code)
		}
	}
	// The throttle counts per wall-clock second: the run may touch two of them in 100 ms.
	seconds := int(time.Now().Unix()-began.Unix()) + 1
	lines := strings.Count(logs.String(), "mqtt connect refused")
	t.Logf("200 failed CONNECTs in %s: %d log lines, %d bytes of log", time.Since(began).Round(time.Millisecond), lines, len(logs.String()))
	if lines > 10*seconds {
		t.Errorf("%d refusal lines in %d s, want at most 10 in each wall-clock second", lines, seconds)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	rawConnect(t, addr, "garbage")
	if !strings.Contains(logs.String(), "suppressed=") {
		t.Error("no line counts the suppressed refusals")
	}

	f := start(t, func(c *config.Config) { c.Limits.MQTTConnectsPerMinutePerIP = 5 })
	addr = strings.TrimPrefix(f.mqtt, "tcp://")
	for i := 0; i < 5; i++ {
		if code := rawConnect(t, addr, "garbage"); code != 5 {
			t.Fatalf("attempt %d within the rate: return code %d, want 5", i, code)
		}
	}
	if code := rawConnect(t, addr, token(t, auth.Service, "shop", "s")); code != -1 {
		t.Errorf("a 6th attempt in a minute got a CONNACK (%d), want the socket closed", code)
	}
}

// TestMQTTRetainedACL: a retained publish passes the publish ACL like any other, so a client of
// another organisation retains nothing there for later subscribers to receive.
func TestMQTTRetainedACL(t *testing.T) {
	e := start(t)
	b, _, err := dialV5(t, e, token(t, auth.Service, "other", "b1"), "b1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, topic := range []string{"orgs/shop/service/v1", "orgs/shop/conversations/c1"} {
		pr, err := b.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(`{"content":"forged"}`)})
		if pr == nil {
			t.Fatalf("retained publish to %s: no PUBACK: %v", topic, err)
		}
		if pr.ReasonCode != 0x87 {
			t.Errorf("retained publish to %s: 0x%x, want 0x87", topic, pr.ReasonCode)
		}
	}
	m := e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	m.none(300 * time.Millisecond)
}
