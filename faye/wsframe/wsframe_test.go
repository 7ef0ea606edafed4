package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf8"
)

// clientFrame builds a masked client frame with a raw first byte.
func clientFrame(b0 byte, payload []byte) []byte {
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	n := len(payload)
	out := []byte{b0}
	switch {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = binary.BigEndian.AppendUint16(append(out, 0x80|126), uint16(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, 0x80|127), uint64(n))
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

func TestParse(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 300)
	huge := bytes.Repeat([]byte("y"), 70000)
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    Frame
		n       int
		err     error
		needLen int // on ErrShort: the n reported
	}{
		{"text", clientFrame(0x81, []byte(`[{"a":1}]`)), 1 << 20, Frame{true, OpText, []byte(`[{"a":1}]`)}, 15, nil, 0},
		{"empty text", clientFrame(0x81, nil), 10, Frame{true, OpText, []byte{}}, 6, nil, 0},
		{"16-bit length", clientFrame(0x81, long), 1 << 20, Frame{true, OpText, long}, 8 + 300, nil, 0},
		{"64-bit length", clientFrame(0x82, huge), 1 << 20, Frame{true, OpBinary, huge}, 14 + 70000, nil, 0},
		{"first fragment", clientFrame(0x01, []byte("ab")), 10, Frame{false, OpText, []byte("ab")}, 8, nil, 0},
		{"continuation", clientFrame(0x80, []byte("cd")), 10, Frame{true, OpContinuation, []byte("cd")}, 8, nil, 0},
		{"ping", clientFrame(0x89, []byte("p")), 10, Frame{true, OpPing, []byte("p")}, 7, nil, 0},
		{"close", clientFrame(0x88, ClosePayload(1000, "bye")), 10, Frame{true, OpClose, ClosePayload(1000, "bye")}, 11, nil, 0},
		{"one byte", []byte{0x81}, 10, Frame{}, 0, ErrShort, 0},
		{"header without mask", clientFrame(0x81, []byte("abc"))[:3], 10, Frame{}, 0, ErrShort, 0},
		{"payload cut", clientFrame(0x81, []byte("abcdef"))[:8], 10, Frame{}, 0, ErrShort, 12},
		{"16-bit length cut", clientFrame(0x81, long)[:3], 1 << 20, Frame{}, 0, ErrShort, 0},
		{"too big", clientFrame(0x81, long), 299, Frame{}, 0, ErrTooBig, 0},
		{"too big before the payload arrives", clientFrame(0x82, huge)[:10], 1000, Frame{}, 0, ErrTooBig, 0},
		{"unmasked", []byte{0x81, 0x01, 'a'}, 10, Frame{}, 0, ErrProtocol, 0},
		{"reserved bit", clientFrame(0xC1, []byte("a")), 10, Frame{}, 0, ErrProtocol, 0},
		{"reserved opcode", clientFrame(0x83, []byte("a")), 10, Frame{}, 0, ErrProtocol, 0},
		{"reserved control opcode", clientFrame(0x8B, []byte("a")), 10, Frame{}, 0, ErrProtocol, 0},
		{"fragmented control", clientFrame(0x09, []byte("a")), 10, Frame{}, 0, ErrProtocol, 0},
		{"long control", clientFrame(0x89, long[:126]), 1000, Frame{}, 0, ErrProtocol, 0},
		{"64-bit length with the top bit", append([]byte{0x82, 0xFF}, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4), 10, Frame{}, 0, ErrProtocol, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, n, err := Parse(tt.in, tt.max)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				if errors.Is(err, ErrShort) && n != tt.needLen {
					t.Errorf("short: n %d, want %d", n, tt.needLen)
				}
				return
			}
			if n != tt.n || f.Fin != tt.want.Fin || f.Op != tt.want.Op || !bytes.Equal(f.Payload, tt.want.Payload) {
				t.Errorf("got %+v n=%d, want %+v n=%d", f, n, tt.want, tt.n)
			}
		})
	}
}

func TestParseSeveralFramesInOneBuffer(t *testing.T) {
	buf := append(clientFrame(0x81, []byte("one")), clientFrame(0x89, nil)...)
	buf = append(buf, clientFrame(0x81, []byte("two"))...)
	var got []string
	for len(buf) > 0 {
		f, n, err := Parse(buf, 100)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(rune('0'+f.Op))+string(f.Payload))
		buf = buf[n:]
	}
	if want := []string{"1one", "9", "1two"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestAppendFrame(t *testing.T) {
	for _, n := range []int{0, 125, 126, 0xffff, 0x10000} {
		payload := bytes.Repeat([]byte("z"), n)
		frame := AppendFrame(nil, OpText, payload)
		if len(frame) != HeaderLen(n)+n {
			t.Fatalf("%d bytes: frame of %d, header %d", n, len(frame), HeaderLen(n))
		}
		// A server frame is a client frame without the mask: set the mask bit with a zero
		// mask, and Parse must read it back.
		masked := append([]byte{frame[0], frame[1] | 0x80}, frame[2:HeaderLen(n)]...)
		masked = append(append(masked, 0, 0, 0, 0), payload...)
		f, used, err := Parse(masked, 1<<20)
		if err != nil || used != len(masked) || !f.Fin || f.Op != OpText || len(f.Payload) != n {
			t.Errorf("%d bytes: %+v %d %v", n, f.Op, used, err)
		}
	}
}

func TestHandshakeAndClose(t *testing.T) {
	// RFC 6455 section 1.3's example.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("accept key %q", got)
	}
	for key, ok := range map[string]bool{"dGhlIHNhbXBsZSBub25jZQ==": true, "": false, "abc": false, "dGhlIHNhbXBsZSBub25jZXh4": false} {
		if ValidKey(key) != ok {
			t.Errorf("ValidKey(%q) = %v", key, !ok)
		}
	}
	if p := ClosePayload(CloseMessageTooBig, "big"); CloseCode(p) != 1009 || string(p[2:]) != "big" {
		t.Errorf("close payload %v", p)
	}
	if CloseCode(nil) != 0 || CloseCode([]byte{3}) != 0 {
		t.Error("a close without a code")
	}
}

// FuzzParse: any bytes a client sends give a frame within bounds or an error, never a panic.
func FuzzParse(f *testing.F) {
	f.Add(clientFrame(0x81, []byte(`[{"channel":"/meta/connect"}]`)), 64)
	f.Add(clientFrame(0x81, bytes.Repeat([]byte("a"), 200)), 1000)
	f.Add(clientFrame(0x88, ClosePayload(1000, "")), 10)
	f.Add([]byte{0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0}, 1<<20)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 0 {
			max = -max
		}
		fr, n, err := Parse(b, max)
		switch {
		case err == nil:
			if n > len(b) || len(fr.Payload) > max || len(fr.Payload) > n {
				t.Fatalf("frame of %d bytes over %d (max %d), payload %d", n, len(b), max, len(fr.Payload))
			}
		case errors.Is(err, ErrShort):
			if n != 0 && (n <= len(b) || n-14 > max) {
				t.Fatalf("short with need %d of a buffer of %d (max %d)", n, len(b), max)
			}
		}
	})
}

// FuzzAssemble: any stream of client frames, parsed and reassembled as the loop does, gives
// messages that are exactly their fragments joined, within the limit, and valid UTF-8 when
// text; or a close with a code a client may be sent. Never a panic.
func FuzzAssemble(f *testing.F) {
	kosme := []byte("κόσμε")
	f.Add(append(clientFrame(0x01, kosme[:3]), clientFrame(0x80, kosme[3:])...), 64)
	f.Add(append(append(clientFrame(0x01, []byte("ab")), clientFrame(0x89, []byte("p"))...), clientFrame(0x80, []byte("cd"))...), 64)
	f.Add(append(clientFrame(0x01, []byte{0xce}), clientFrame(0x80, []byte{0x41})...), 64)
	f.Add(append(clientFrame(0x02, []byte("abc")), clientFrame(0x80, []byte("def"))...), 4)
	f.Add(append(clientFrame(0x81, []byte("a")), clientFrame(0x88, ClosePayload(1016, ""))...), 64)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		if max < 0 {
			max = -max
		}
		a := Assembler{Max: max}
		var want []byte // the fragments of the message so far, as a reference
		for len(b) > 0 {
			fr, n, err := Parse(b, max)
			if err != nil {
				return
			}
			b = b[n:]
			if IsControl(fr.Op) {
				if fr.Op == OpClose {
					if ce := CheckClose(fr.Payload); !ValidCloseCode(ce.Code) {
						t.Fatalf("answering a close %x with code %d", fr.Payload, ce.Code)
					}
				}
				continue
			}
			if fr.Op != OpContinuation {
				want = want[:0]
			}
			want = append(want, fr.Payload...)
			m, ok, err := a.Add(fr)
			var ce *CloseError
			switch {
			case errors.As(err, &ce):
				if !ValidCloseCode(ce.Code) || ce.Code == CloseNormal {
					t.Fatalf("close code %d: %v", ce.Code, err)
				}
				return
			case err != nil:
				t.Fatalf("not a close error: %v", err)
			case !ok:
				continue
			case len(m.Data) > max, !bytes.Equal(m.Data, want):
				t.Fatalf("message %q (max %d), want %q", m.Data, max, want)
			case m.Op == OpText && !utf8.Valid(m.Data):
				t.Fatalf("text message not UTF-8: %q", m.Data)
			}
			want = want[:0]
		}
	})
}

func TestAssembler(t *testing.T) {
	a := Assembler{Max: 8}
	kosme := []byte("κόσμε")
	if _, ok, err := a.Add(Frame{false, OpText, kosme[:1]}); ok || err != nil {
		t.Fatalf("first fragment: %v %v", ok, err)
	}
	if _, _, err := a.Add(Frame{true, OpContinuation, kosme[1:]}); err == nil {
		t.Fatal("a message over Max assembled")
	}
	a = Assembler{Max: 64}
	a.Add(Frame{false, OpText, kosme[:1]})
	if m, ok, err := a.Add(Frame{true, OpContinuation, kosme[1:]}); !ok || err != nil || !bytes.Equal(m.Data, kosme) {
		t.Fatalf("split inside a character: %q %v %v", m.Data, ok, err)
	}
	var ce *CloseError
	if _, _, err := a.Add(Frame{true, OpText, []byte{0xff}}); !errors.As(err, &ce) || ce.Code != CloseInvalidPayload {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	for payload, code := range map[string]int{"": 1000, "\x03": 1002, "\x03\xe8ok": 1000, "\x03\xe8\xff": 1007, "\x03\xf8": 1002, "\x0b\xb8": 3000} {
		if got := CheckClose([]byte(payload)).Code; got != code {
			t.Errorf("CheckClose(%x) = %d, want %d", payload, got, code)
		}
	}
}
