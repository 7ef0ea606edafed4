package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// rawWS is a websocket client at the frame level, to send what a well-behaved library never
// would.
type rawWS struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialRawWS(t testing.TB, e *env, headers string) (*rawWS, string) {
	t.Helper()
	addr := strings.TrimPrefix(e.base, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /faye/some/path HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n%s\r\n", addr, headers)
	r := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("handshake: %v after %q", err, head.String())
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	return &rawWS{t: t, c: c, r: r}, head.String()
}

func (w *rawWS) send(b0 byte, payload []byte, masked bool) {
	w.t.Helper()
	frame := []byte{b0}
	n := len(payload)
	bit := byte(0)
	if masked {
		bit = 0x80
	}
	switch {
	case n < 126:
		frame = append(frame, bit|byte(n))
	default:
		frame = binary.BigEndian.AppendUint16(append(frame, bit|126), uint16(n))
	}
	mask := []byte{1, 2, 3, 4}
	if masked {
		frame = append(frame, mask...)
	}
	for i, c := range payload {
		if masked {
			c ^= mask[i%4]
		}
		frame = append(frame, c)
	}
	if _, err := w.c.Write(frame); err != nil {
		w.t.Fatal(err)
	}
}

// next reads one server frame: its opcode and payload.
func (w *rawWS) next() (byte, []byte) {
	w.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		w.t.Fatalf("read a frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		w.t.Fatal("a masked server frame")
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		_, _ = io.ReadFull(w.r, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, _ = io.ReadFull(w.r, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(w.r, p); err != nil {
		w.t.Fatalf("read a payload: %v", err)
	}
	return h[0] & 0x0f, p
}

// closed reports whether the server ended the connection (after what it had sent).
func (w *rawWS) closed() bool {
	_, err := io.Copy(io.Discard, w.r)
	return err == nil
}

const wsKeyHeaders = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

// TestFayeWebSocketProtocol: the handshake, fragmentation, control frames, and what breaks
// RFC 6455.
func TestFayeWebSocketProtocol(t *testing.T) {
	e := fayeEnv(t)
	sTok := token(t, auth.Service, "shop", "s")

	if _, head := dialRawWS(t, e, "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"); !strings.HasPrefix(head, "HTTP/1.1 426") || !strings.Contains(head, "Sec-Websocket-Version: 13") {
		t.Errorf("version 8: %q", head)
	}
	if _, head := dialRawWS(t, e, "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n"); !strings.HasPrefix(head, "HTTP/1.1 400") {
		t.Errorf("a bad key: %q", head)
	}

	ws, head := dialRawWS(t, e, wsKeyHeaders)
	if !strings.HasPrefix(head, "HTTP/1.1 101") || !strings.Contains(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") {
		t.Fatalf("handshake: %q", head)
	}
	// A handshake in three fragments, with a ping between them.
	hs := `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1","ext":{"token":"` + sTok + `"}}]`
	ws.send(0x01, []byte(hs[:10]), true)
	ws.send(0x00, []byte(hs[10:20]), true)
	ws.send(0x89, []byte("are you there"), true)
	ws.send(0x80, []byte(hs[20:]), true)
	if op, p := ws.next(); op != 0xA || string(p) != "are you there" {
		t.Fatalf("pong: %x %q", op, p)
	}
	if op, p := ws.next(); op != 0x1 || !strings.Contains(string(p), `"successful":true`) || !strings.Contains(string(p), `"clientId"`) {
		t.Fatalf("handshake reply: %x %s", op, p)
	}
	ws.send(0x82, []byte("binary is ignored"), true)
	ws.send(0x81, []byte(`[]`), true)
	if op, p := ws.next(); op != 0x1 || string(p) != "[]" {
		t.Fatalf("empty batch: %x %s", op, p)
	}
	// The client closes: the server answers with the same code and ends the connection.
	ws.send(0x88, []byte{0x03, 0xE9}, true) // 1001
	if op, p := ws.next(); op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1001 {
		t.Fatalf("close echo: %x %v", op, p)
	}
	if !ws.closed() {
		t.Error("the connection outlived the close handshake")
	}

	breaks := map[string]func(*rawWS){
		"unmasked":           func(w *rawWS) { w.send(0x81, []byte("[]"), false) },
		"reserved opcode":    func(w *rawWS) { w.send(0x83, []byte("[]"), true) },
		"lone continuation":  func(w *rawWS) { w.send(0x80, []byte("[]"), true) },
		"fragmented control": func(w *rawWS) { w.send(0x09, nil, true) },
	}
	for name, send := range breaks {
		ws, _ := dialRawWS(t, e, wsKeyHeaders)
		send(ws)
		if op, p := ws.next(); op != 0x8 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1002 {
			t.Errorf("%s: %x %v, want a close 1002", name, op, p)
		}
		if !ws.closed() {
			t.Errorf("%s: the connection stayed open", name)
		}
	}
}

// TestWebSocketConnectionSlots: Faye and MQTT websockets count against the per-address
// connection limit while open, and give their slot back when they end.
func TestWebSocketConnectionSlots(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) { c.Limits.ConnectionsPerIP = 3 })
	addr := strings.TrimPrefix(e.base, "http://")
	a, _ := dialRawWS(t, e, wsKeyHeaders)
	dialRawWS(t, e, wsKeyHeaders)
	wsURL := strings.Replace(e.base, "http", "ws", 1) + "/mqtt"
	mqttWS := func(id string) (pahov3.Client, error) {
		opts := pahov3.NewClientOptions().AddBroker(wsURL).SetClientID(id).SetUsername("s").SetPassword(token(t, auth.Service, "shop", "s")).SetAutoReconnect(false).SetConnectRetry(false)
		c := pahov3.NewClient(opts)
		tk := c.Connect()
		if !tk.WaitTimeout(10 * time.Second) {
			return nil, fmt.Errorf("connect timed out")
		}
		return c, tk.Error()
	}
	m, err := mqttWS("ws-1")
	if err != nil {
		t.Fatalf("MQTT over websocket: %v", err)
	}
	full := func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err != nil || resp.StatusCode == http.StatusTooManyRequests
	}
	if !full() {
		t.Fatal("a 4th connection next to 3 websockets was accepted")
	}
	a.send(0x88, []byte{0x03, 0xE8}, true)
	a.next()
	waitFor(t, "the closed Faye websocket's slot", func() bool { return !full() })
	m.Disconnect(100)
	dialRawWS(t, e, wsKeyHeaders) // takes the Faye slot back: 3 again with the MQTT one gone
	waitFor(t, "the MQTT websocket's slot", func() bool { return !full() })
}
