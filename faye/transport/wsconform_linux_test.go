//go:build linux

package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/faye"
	"github.com/convead/chat-server/faye/wsframe"
)

// wsServer is the websocket loop on a loopback listener, without HTTP: each accepted
// connection is handed to the loop as an upgraded one.
type wsServer struct {
	h     *handler
	ln    net.Listener
	conns []*wsConn
}

func newWSServer(tb testing.TB, maxFrame int) *wsServer {
	e := testEngine(tb, 1<<20)
	h := newHandler(e, Config{MaxFrameBytes: maxFrame})
	if _, err := h.loop(); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.closeLoop(); ln.Close() })
	return &wsServer{h: h, ln: ln}
}

// dial opens a raw client connection served by the loop.
func (s *wsServer) dial(tb testing.TB) *rawClient {
	c, err := net.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	sc, err := s.ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	w, err := s.h.serveConn(s.h.rx, sc, faye.Peer{IP: "127.0.0.1"})
	if err != nil {
		tb.Fatal(err)
	}
	s.conns = append(s.conns, w)
	return &rawClient{c: c, r: bufio.NewReader(c)}
}

type rawClient struct {
	c net.Conn
	r *bufio.Reader
}

// readFrame reads one server frame: its opcode and payload.
func (c *rawClient) readFrame() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[1]&0x80 != 0 {
		return 0, nil, errors.New("the server masked a frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.r, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(c.r, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.r, payload)
	return h[0] & 0x0f, payload, err
}

// wsCase is one conformance case: frames the client sends, then what the server must do.
// With close 0, the connection stays open: the server answers wantPongs (in order) and
// wantTexts text frames, then a probe ping of ours. With a close code, it sends a close frame
// with that code (after wantPongs) and ends the stream.
type wsCase struct {
	name      string
	send      []frame
	wantPongs []string
	wantTexts int
	close     int
}

const conformMax = 64 << 10

func runConformance(t *testing.T, cases []wsCase) {
	t.Helper()
	s := newWSServer(t, conformMax)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t)
			var out []byte
			for _, f := range tc.send {
				out = append(out, f.bytes()...)
			}
			pongs := tc.wantPongs
			if tc.close == 0 {
				out = append(out, frame{0x89, []byte("probe"), false}.bytes()...)
				pongs = append(append([]string(nil), pongs...), "probe")
			}
			if _, err := c.c.Write(out); err != nil {
				t.Fatal(err)
			}
			_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			var gotPongs []string
			texts := 0
			for {
				if tc.close == 0 && len(gotPongs) == len(pongs) && texts >= tc.wantTexts {
					break
				}
				op, p, err := c.readFrame()
				if err != nil {
					t.Fatalf("after pongs %q and %d texts: %v", gotPongs, texts, err)
				}
				switch op {
				case wsframe.OpPong:
					gotPongs = append(gotPongs, string(p))
				case wsframe.OpText:
					texts++
				case wsframe.OpClose:
					if code := wsframe.CloseCode(p); code != tc.close {
						t.Fatalf("closed with %d (%q), want %d", code, p[min(2, len(p)):], tc.close)
					}
					if _, _, err := c.readFrame(); !errors.Is(err, io.EOF) {
						t.Fatalf("after the close frame: %v, want the end of the stream", err)
					}
					if fmt.Sprint(gotPongs) != fmt.Sprint(pongs) {
						t.Fatalf("pongs %q, want %q", gotPongs, pongs)
					}
					return
				default:
					t.Fatalf("unexpected frame %#x %q", op, p)
				}
			}
			if tc.close != 0 {
				t.Fatalf("no close, want %d", tc.close)
			}
			if fmt.Sprint(gotPongs) != fmt.Sprint(pongs) || texts != tc.wantTexts {
				t.Fatalf("pongs %q and %d texts, want %q and %d", gotPongs, texts, pongs, tc.wantTexts)
			}
		})
	}
}

// handshake is a Bayeux batch the engine answers with one text frame; it carries multibyte
// characters so that fragments can split one.
var handshake = []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"n":"κόσμε"}}]`)

func text(p []byte) frame   { return frame{0x81, p, false} }
func txt(s string) frame    { return text([]byte(s)) }
func ping(s string) frame   { return frame{0x89, []byte(s), false} }
func cont(p []byte) frame   { return frame{0x80, p, false} }
func closeF(p []byte) frame { return frame{0x88, p, false} }

// split cuts p into fragments at the given offsets.
func split(op byte, p []byte, at ...int) []frame {
	var fs []frame
	prev := 0
	for _, i := range at {
		fs = append(fs, frame{0, p[prev:i], false})
		prev = i
	}
	fs = append(fs, frame{0x80, p[prev:], false})
	fs[0].b0 |= op
	return fs
}

// The cases follow the Autobahn testsuite's categories (https://github.com/crossbario/autobahn-testsuite).

func TestConformanceFraming(t *testing.T) { // Autobahn 1
	runConformance(t, []wsCase{
		{name: "text answered", send: []frame{text(handshake)}, wantTexts: 1},
		{name: "empty text", send: []frame{txt("")}},
		{name: "125 bytes", send: []frame{txt(strings.Repeat("*", 125))}},
		{name: "126 bytes", send: []frame{txt(strings.Repeat("*", 126))}},
		{name: "65535 bytes", send: []frame{txt(strings.Repeat("*", 65535))}},
		{name: "65536 bytes", send: []frame{txt(strings.Repeat("*", 65536))}},
		{name: "binary ignored", send: []frame{{0x82, []byte{0, 0xff, 0xfe}, false}}},
		{name: "unmasked", send: []frame{{0x81, []byte("a"), true}}, close: wsframe.CloseProtocolError},
	})
}

func TestConformancePings(t *testing.T) { // Autobahn 2
	long := strings.Repeat("p", 125)
	runConformance(t, []wsCase{
		{name: "empty ping", send: []frame{ping("")}, wantPongs: []string{""}},
		{name: "text payload", send: []frame{ping("Hello, world!")}, wantPongs: []string{"Hello, world!"}},
		{name: "binary payload", send: []frame{{0x89, []byte{0, 0xff, 0xfe, 0xfd}, false}}, wantPongs: []string{"\x00\xff\xfe\xfd"}},
		{name: "125 bytes", send: []frame{ping(long)}, wantPongs: []string{long}},
		{name: "126 bytes", send: []frame{ping(long + "p")}, close: wsframe.CloseProtocolError},
		{name: "unsolicited pong ignored", send: []frame{{0x8A, []byte("x"), false}}},
		{name: "unsolicited pong, then ping", send: []frame{{0x8A, []byte("x"), false}, ping("y")}, wantPongs: []string{"y"}},
		{name: "ten pings", send: []frame{ping("0"), ping("1"), ping("2"), ping("3"), ping("4"), ping("5"), ping("6"), ping("7"), ping("8"), ping("9")},
			wantPongs: strings.Split("0123456789", "")},
	})
}

func TestConformanceReservedBits(t *testing.T) { // Autobahn 3
	var cases []wsCase
	for _, rsv := range []byte{0x40, 0x20, 0x10, 0x70} {
		cases = append(cases,
			wsCase{name: fmt.Sprintf("text %#x", rsv), send: []frame{{0x81 | rsv, []byte("a"), false}}, close: wsframe.CloseProtocolError},
			wsCase{name: fmt.Sprintf("ping %#x", rsv), send: []frame{{0x89 | rsv, nil, false}}, close: wsframe.CloseProtocolError},
			wsCase{name: fmt.Sprintf("after a valid ping %#x", rsv), send: []frame{ping("ok"), {0x82 | rsv, nil, false}},
				wantPongs: []string{"ok"}, close: wsframe.CloseProtocolError})
	}
	runConformance(t, cases)
}

func TestConformanceOpcodes(t *testing.T) { // Autobahn 4
	var cases []wsCase
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		cases = append(cases,
			wsCase{name: fmt.Sprintf("opcode %#x", op), send: []frame{{0x80 | op, nil, false}}, close: wsframe.CloseProtocolError},
			wsCase{name: fmt.Sprintf("opcode %#x with payload after a ping", op), send: []frame{ping("ok"), {0x80 | op, []byte("abc"), false}},
				wantPongs: []string{"ok"}, close: wsframe.CloseProtocolError})
	}
	runConformance(t, cases)
}

func TestConformanceFragmentation(t *testing.T) { // Autobahn 5
	twoThenPing := split(wsframe.OpText, handshake, 10)
	twoThenPing = []frame{twoThenPing[0], ping("mid"), twoThenPing[1]}
	runConformance(t, []wsCase{
		{name: "fragmented ping", send: []frame{{0x09, []byte("a"), false}, cont([]byte("b"))}, close: wsframe.CloseProtocolError},
		{name: "fragmented pong", send: []frame{{0x0A, []byte("a"), false}, cont([]byte("b"))}, close: wsframe.CloseProtocolError},
		{name: "text in two fragments", send: split(wsframe.OpText, handshake, 10), wantTexts: 1},
		{name: "text in one-byte fragments", send: split(wsframe.OpText, handshake, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), wantTexts: 1},
		{name: "empty fragments", send: split(wsframe.OpText, handshake, 0, 0, len(handshake), len(handshake)), wantTexts: 1},
		{name: "ping between fragments", send: twoThenPing, wantPongs: []string{"mid"}, wantTexts: 1},
		{name: "binary in fragments ignored", send: split(wsframe.OpBinary, []byte("abcdef"), 3)},
		{name: "continuation without a start", send: []frame{cont([]byte("a"))}, close: wsframe.CloseProtocolError},
		{name: "unfinished continuation without a start", send: []frame{{0x00, []byte("a"), false}}, close: wsframe.CloseProtocolError},
		{name: "continuation after a whole message", send: []frame{txt("a"), cont([]byte("b"))}, close: wsframe.CloseProtocolError},
		{name: "new text inside a fragmented one", send: []frame{{0x01, []byte("a"), false}, txt("b")}, close: wsframe.CloseProtocolError},
		{name: "new binary inside a fragmented one", send: []frame{{0x01, []byte("a"), false}, {0x02, []byte("b"), false}}, close: wsframe.CloseProtocolError},
	})
}

func TestConformanceUTF8(t *testing.T) { // Autobahn 6
	kosme := []byte("κόσμε")
	var cases []wsCase
	for _, tc := range []struct {
		name string
		p    []byte
	}{
		{"lone continuation byte", []byte{0x80}},
		{"overlong slash", []byte{0xc0, 0xaf}},
		{"surrogate", []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")},
		{"above U+10FFFF", []byte{0xf4, 0x90, 0x80, 0x80}},
		{"truncated sequence at the end", []byte("κόσμ\xce")},
		{"0xfe", []byte{'a', 0xfe}},
	} {
		cases = append(cases,
			wsCase{name: tc.name, send: []frame{text(tc.p)}, close: wsframe.CloseInvalidPayload},
			wsCase{name: tc.name + " in fragments", send: split(wsframe.OpText, tc.p, len(tc.p)/2), close: wsframe.CloseInvalidPayload})
	}
	cases = append(cases,
		wsCase{name: "valid", send: []frame{text(kosme)}},
		wsCase{name: "valid, split inside a character", send: split(wsframe.OpText, kosme, 1, 3, 6)},
		wsCase{name: "valid batch split inside a character", send: split(wsframe.OpText, handshake, bytes.Index(handshake, kosme)+1), wantTexts: 1},
		wsCase{name: "every code point class", send: []frame{txt("a\u00e9\u20ac\U0001F600\U0010FFFF")}},
		wsCase{name: "binary need not be UTF-8", send: []frame{{0x82, []byte{0xff, 0xfe}, false}}},
	)
	runConformance(t, cases)
}

func TestConformanceClose(t *testing.T) { // Autobahn 7
	code := func(c int, reason string) []byte { return wsframe.ClosePayload(c, reason) }
	cases := []wsCase{
		{name: "empty close", send: []frame{closeF(nil)}, close: wsframe.CloseNormal},
		{name: "one-byte payload", send: []frame{closeF([]byte{0x03})}, close: wsframe.CloseProtocolError},
		{name: "with a reason", send: []frame{closeF(code(1000, "bye"))}, close: wsframe.CloseNormal},
		{name: "123-byte reason", send: []frame{closeF(code(1000, strings.Repeat("r", 123)))}, close: wsframe.CloseNormal},
		{name: "124-byte reason", send: []frame{closeF(code(1000, strings.Repeat("r", 124)))}, close: wsframe.CloseProtocolError},
		{name: "reason not UTF-8", send: []frame{closeF(code(1000, "\xce\xba\xed\xa0\x80"))}, close: wsframe.CloseInvalidPayload},
		{name: "frames after the close ignored", send: []frame{closeF(code(1000, "")), ping("late"), txt("late")}, close: wsframe.CloseNormal},
		{name: "text, then close", send: []frame{text(handshake), closeF(nil)}, wantTexts: 0, close: wsframe.CloseNormal},
	}
	for _, c := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, wsCase{name: fmt.Sprintf("code %d", c), send: []frame{closeF(code(c, ""))}, close: c})
	}
	for _, c := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, wsCase{name: fmt.Sprintf("invalid code %d", c), send: []frame{closeF(code(c, ""))}, close: wsframe.CloseProtocolError})
	}
	runConformance(t, cases)
}

func TestConformanceLimits(t *testing.T) { // Autobahn 9
	big := bytes.Repeat([]byte("x"), conformMax)
	runConformance(t, []wsCase{
		{name: "a message of the limit", send: []frame{text(big)}},
		{name: "fragments up to the limit", send: split(wsframe.OpText, big, conformMax/4, conformMax/2)},
		{name: "a frame over the limit", send: []frame{text(append(big, 'x'))}, close: wsframe.CloseMessageTooBig},
		{name: "binary over the limit", send: []frame{{0x82, append(big, 'x'), false}}, close: wsframe.CloseMessageTooBig},
		{name: "fragments over the limit", send: split(wsframe.OpText, append(big, 'x'), conformMax/2), close: wsframe.CloseMessageTooBig},
	})
}

// TestAnnouncedLengthTakesNoMemory: a frame header announces a megabyte and its sender stops
// there. Buffers grow with the bytes that arrive, so a thousand such sockets hold a few
// kilobytes each, not the gigabyte they announce.
func TestAnnouncedLengthTakesNoMemory(t *testing.T) {
	const sockets, announced = 1000, 1 << 20
	s := newWSServer(t, announced)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	header := binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, announced)
	header = append(header, 1, 2, 3, 4, 'x') // the mask and one byte of payload: 15 bytes
	clients := make([]*rawClient, sockets)
	for i := range clients {
		clients[i] = s.dial(t)
	}
	before := heap()
	for _, c := range clients {
		if _, err := c.c.Write(header); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the loop has buffered every partial frame.
	deadline := time.Now().Add(30 * time.Second)
	for s.partials() < sockets {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sockets hold a partial frame", s.partials(), sockets)
		}
		time.Sleep(10 * time.Millisecond)
	}
	grown := int64(heap()) - int64(before)
	t.Logf("heap grew by %d KiB for %d sockets announcing %d KiB each", grown>>10, sockets, announced>>10)
	if limit := int64(sockets) * 4 << 10; grown > limit {
		t.Fatalf("heap grew by %d bytes, over %d: buffers follow the announced length", grown, limit)
	}
}

// partials counts the sockets holding an incomplete frame.
func (s *wsServer) partials() int {
	n := 0
	for _, w := range s.conns {
		w.c.Exclusive(func() {
			if w.rd != nil && len(w.rd.frame) > 0 {
				n++
			}
		})
	}
	return n
}
