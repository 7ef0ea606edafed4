package transport

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/convead/chat-server/faye/wsframe"
)

// frame is a raw client frame: b0 is FIN, RSV and opcode; unmasked leaves the mask bit off.
type frame struct {
	b0       byte
	payload  []byte
	unmasked bool
}

func (f frame) bytes() []byte {
	n := len(f.payload)
	mbit := byte(0x80)
	if f.unmasked {
		mbit = 0
	}
	out := []byte{f.b0}
	switch {
	case n < 126:
		out = append(out, mbit|byte(n))
	case n <= 0xffff:
		out = binary.BigEndian.AppendUint16(append(out, mbit|126), uint16(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, mbit|127), uint64(n))
	}
	if f.unmasked {
		return append(out, f.payload...)
	}
	mask := [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	out = append(out, mask[:]...)
	for i, c := range f.payload {
		out = append(out, c^mask[i&3])
	}
	return out
}

// TestIncompleteReadsReleased checks that a socket holds state for what its reads left
// incomplete only while something is: an idle socket must own none.
func TestIncompleteReadsReleased(t *testing.T) {
	pong := frame{b0: 0x80 | wsframe.OpPong, payload: []byte("pong")}.bytes()
	first := frame{b0: wsframe.OpBinary, payload: []byte("first half,")}.bytes() // binary: ignored once whole
	last := frame{b0: 0x80, payload: []byte(" second half")}.bytes()             // its continuation
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
