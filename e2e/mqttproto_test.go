package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// rawMQTT is a client that writes and reads packets itself, to see every byte the server
// sends (real clients hide or reject what the protocol forbids).
type rawMQTT struct {
	t       *testing.T
	conn    net.Conn
	version byte
}

// dialRaw connects with protocol version 4 (3.1.1) or 5 and returns the CONNACK.
func dialRaw(t *testing.T, e *env, version byte, tok, clientID string) (*rawMQTT, packets.Packet) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.mqtt, "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawMQTT{t: t, conn: conn, version: version}
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: clientID,
		UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte(tok)}})
	ca, err := r.read()
	if err != nil || ca.FixedHeader.Type != packets.Connack || ca.ReasonCode != 0 {
		t.Fatalf("connect: %+v, %v", ca, err)
	}
	return r, ca
}

func (r *rawMQTT) send(pk packets.Packet) {
	r.t.Helper()
	pk.ProtocolVersion = r.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	}
	if err == nil {
		_, err = r.conn.Write(buf.Bytes())
	}
	if err != nil {
		r.t.Fatalf("send %s: %v", packets.PacketNames[pk.FixedHeader.Type], err)
	}
}

// read returns the next packet the server sends; io.EOF once it closed the connection.
func (r *rawMQTT) read() (packets.Packet, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	one := make([]byte, 1)
	if _, err := io.ReadFull(r.conn, one); err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: r.version}
	if err := pk.FixedHeader.Decode(one[0]); err != nil {
		return pk, err
	}
	for mul := 1; ; mul *= 128 {
		if _, err := io.ReadFull(r.conn, one); err != nil {
			return pk, err
		}
		pk.FixedHeader.Remaining += int(one[0]&127) * mul
		if one[0] < 128 {
			break
		}
	}
	body := make([]byte, pk.FixedHeader.Remaining)
	if _, err := io.ReadFull(r.conn, body); err != nil {
		return pk, err
	}
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	return pk, err
}

// TestMQTT311NoServerDisconnect: in 3.1.1 only a client sends DISCONNECT; when the server
// ends a 3.1.1 connection (session takeover, refused publish, token expiry) it closes the socket, writing
// nothing.
func TestMQTT311NoServerDisconnect(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Auth.Leeway = 0 })
	closedSilently := func(t *testing.T, r *rawMQTT) {
		t.Helper()
		pk, err := r.read()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("server wrote %s (reason 0x%x), err %v; want the connection closed", packets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode, err)
		}
	}
	t.Run("takeover", func(t *testing.T) {
		tok := token(t, auth.Manager, "shop", "m1")
		first, _ := dialRaw(t, e, 4, tok, "m1-app")
		dialRaw(t, e, 4, tok, "m1-app")
		closedSilently(t, first)
	})
	t.Run("refused publish", func(t *testing.T) {
		r, _ := dialRaw(t, e, 4, token(t, auth.Visitor, "shop", "v2"), "v2-app")
		r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
			TopicName: "orgs/shop/service/v2", Payload: []byte(`{}`)})
		closedSilently(t, r)
	})
	t.Run("token expiry", func(t *testing.T) {
		short, _ := auth.Issue([]byte(secret), auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "shop"}, 2*time.Second, time.Now())
		r, _ := dialRaw(t, e, 4, short, "short-lived")
		closedSilently(t, r)
	})
	// MQTT 5 clients are still told why.
	tok := token(t, auth.Manager, "shop", "m2")
	first, _ := dialRaw(t, e, 5, tok, "m2-app")
	dialRaw(t, e, 5, tok, "m2-app")
	if pk, err := first.read(); err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrSessionTakenOver.Code {
		t.Fatalf("MQTT 5 takeover: %+v, %v", pk, err)
	}
}

// TestMQTT5PubackWithUserProperties: a QoS 1 publish with user properties is acknowledged with
// success, not with the publish's properties copied into the PUBACK.
func TestMQTT5PubackWithUserProperties(t *testing.T) {
	e := start(t)
	e.mustConnect(token(t, auth.Manager, "shop", "m0"), "m0").mustSubscribe("orgs/shop/service/+")
	convID := openConversation(t, e, token(t, auth.Visitor, "shop", "v1"), "v1")["id"].(string)
	m, _, err := dialV5(t, e, token(t, auth.Manager, "shop", "m0"), "m0-app")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, err := m.c.Publish(ctx, &paho.Publish{Topic: "orgs/shop/conversations/" + convID + "/post", QoS: 1,
		Payload:    []byte(`{"content":"with properties","client_message_id":"p-1"}`),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "trace", Value: "abc"}}}})
	if pr == nil {
		t.Fatalf("publish: %v", err)
	}
	if pr.ReasonCode != 0 {
		t.Fatalf("PUBACK reason 0x%x, want 0x00", pr.ReasonCode)
	}
}

// TestMQTT5TopicAlias: the server advertises no topic aliases, so a publish that uses one is a
// protocol error (0x94 topic alias invalid), never a publish the ACL checks against topic "".
func TestMQTT5TopicAlias(t *testing.T) {
	e := start(t)
	e.mustConnect(token(t, auth.Manager, "shop", "m0"), "m0").mustSubscribe("orgs/shop/service/+")
	convID := openConversation(t, e, token(t, auth.Visitor, "shop", "v1"), "v1")["id"].(string)
	r, ca := dialRaw(t, e, 5, token(t, auth.Manager, "shop", "m0"), "m0-app")
	if ca.Properties.TopicAliasMaximum != 0 {
		t.Fatalf("CONNACK topic alias maximum %d, want 0", ca.Properties.TopicAliasMaximum)
	}
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
		TopicName: "orgs/shop/conversations/" + convID + "/post", Payload: []byte(`{"content":"aliased"}`),
		Properties: packets.Properties{TopicAlias: 1, TopicAliasFlag: true}})
	pk, err := r.read()
	if err != nil || pk.FixedHeader.Type != packets.Disconnect || pk.ReasonCode != packets.ErrTopicAliasInvalid.Code {
		t.Fatalf("publish with a topic alias: %s reason 0x%x, %v; want DISCONNECT 0x94", packets.PacketNames[pk.FixedHeader.Type], pk.ReasonCode, err)
	}
}

// TestMQTT5SharedSubscriptions: CONNACK says shared subscriptions are not available, and a
// `$share/` subscribe is refused.
func TestMQTT5SharedSubscriptions(t *testing.T) {
	e := start(t)
	r, ca := dialRaw(t, e, 5, token(t, auth.Manager, "shop", "m1"), "m1-app")
	if !ca.Properties.SharedSubAvailableFlag || ca.Properties.SharedSubAvailable != 0 {
		t.Fatalf("CONNACK shared subscriptions available: flag %v value %d, want 0", ca.Properties.SharedSubAvailableFlag, ca.Properties.SharedSubAvailable)
	}
	r.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "$share/g/orgs/shop/service/+", Qos: 1}}})
	pk, err := r.read()
	if err != nil || pk.FixedHeader.Type != packets.Suback || len(pk.ReasonCodes) != 1 || pk.ReasonCodes[0] != packets.ErrNotAuthorized.Code {
		t.Fatalf("shared subscribe: %+v, %v; want SUBACK 0x87", pk, err)
	}
}
