package transport

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/convead/chat-server/faye/wsframe"
)

// maskedFrame builds a client frame: first byte b0 (FIN and opcode), masked payload.
func maskedFrame(b0 byte, payload []byte) []byte {
	mask := [4]byte{0x0a, 0x0b, 0x0c, 0x0d}
	out := []byte{b0}
	if n := len(payload); n < 126 {
		out = append(out, 0x80|byte(n))
	} else {
		out = binary.BigEndian.AppendUint16(append(out, 0x80|126), uint16(n))
	}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

// TestIncompleteReadsReleased checks that a socket holds state for what its reads left
// incomplete only while something is: an idle socket must own none.
func TestIncompleteReadsReleased(t *testing.T) {
	pong := maskedFrame(0x80|wsframe.OpPong, []byte("pong"))
	first := maskedFrame(wsframe.OpBinary, []byte("first half,")) // binary: ignored once whole
	last := maskedFrame(0x80, []byte(" second half"))             // its continuation
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	tests := []struct {
		name  string
		reads [][]byte
		holds []bool // whether the socket holds incomplete state after each read
	}{
		{"whole frame", [][]byte{pong}, []bool{false}},
		{"frame in two reads", [][]byte{pong[:3], pong[3:]}, []bool{true, false}},
		{"frame after one byte", [][]byte{pong[:1], pong[1:]}, []bool{true, false}},
		{"frame in three reads", [][]byte{pong[:2], pong[2:5], pong[5:]}, []bool{true, true, false}},
		{"second frame split", [][]byte{cat(pong, pong[:2]), pong[2:]}, []bool{true, false}},
		{"fragmented message", [][]byte{first, last}, []bool{true, false}},
		{"fragment and part of the next", [][]byte{cat(first, last[:4]), last[4:]}, []bool{true, false}},
		{"control frame between fragments", [][]byte{first, pong, last}, []bool{true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &wsConn{h: &handler{cfg: Config{MaxFrameBytes: 1 << 10}}}
			for i, p := range tt.reads {
				if code, reason := w.feed(p); code != 0 {
					t.Fatalf("read %d: close %d %s", i, code, reason)
				}
				if got := w.rd != nil; got != tt.holds[i] {
					t.Errorf("after read %d: holds incomplete state %v, want %v", i, got, tt.holds[i])
				}
			}
		})
	}
}

// TestWSConnSize keeps the per-socket struct in its size class: thousands of idle sockets
// hold one each.
func TestWSConnSize(t *testing.T) {
	if got, limit := unsafe.Sizeof(wsConn{}), uintptr(224); got > limit {
		t.Errorf("wsConn is %d bytes, want at most %d", got, limit)
	}
}
