// Package wsframe is the RFC 6455 websocket framing a server needs: parsing masked client
// frames out of a byte buffer, appending unmasked server frames, the handshake's accept key and
// close payloads. It does no I/O, so an event loop can feed it whatever a read returned, and
// every byte a client sends can be fuzzed through it.
package wsframe

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
)

// Opcodes.
const (
	OpContinuation byte = 0x0
	OpText         byte = 0x1
	OpBinary       byte = 0x2
	OpClose        byte = 0x8
	OpPing         byte = 0x9
	OpPong         byte = 0xA
)

// Close codes this server sends.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001
	CloseProtocolError   = 1002
	ClosePolicyViolation = 1008
	CloseMessageTooBig   = 1009
)

// Errors of Parse.
var (
	// ErrShort: the buffer does not hold the whole frame yet; read more.
	ErrShort = errors.New("websocket: incomplete frame")
	// ErrProtocol: the peer broke RFC 6455 (answer with CloseProtocolError).
	ErrProtocol = errors.New("websocket: protocol error")
	// ErrTooBig: the frame's payload is over the limit (answer with CloseMessageTooBig).
	ErrTooBig = errors.New("websocket: frame too big")
)

// Frame is one parsed frame. Payload is already unmasked, in place in the parsed buffer.
type Frame struct {
	Fin     bool
	Op      byte
	Payload []byte
}

// IsControl reports whether op is a control opcode (close, ping, pong).
func IsControl(op byte) bool { return op&0x8 != 0 }

// Parse reads one client frame from the start of b and unmasks its payload in place. n is the
// number of bytes the frame took. On ErrShort, n is the total length the frame needs once its
// header is complete (0 while the header itself is incomplete), so the caller can size its
// buffer once. Client frames must be masked; payloads over max bytes are refused before any
// of them is buffered.
func Parse(b []byte, max int) (f Frame, n int, err error) {
	if len(b) < 2 {
		return f, 0, ErrShort
	}
	b0, b1 := b[0], b[1]
	f.Fin, f.Op = b0&0x80 != 0, b0&0x0f
	switch {
	case b0&0x70 != 0: // RSV bits: no extension was negotiated
		return f, 0, ErrProtocol
	case f.Op > OpBinary && f.Op < OpClose, f.Op > OpPong:
		return f, 0, ErrProtocol
	case b1&0x80 == 0: // clients must mask
		return f, 0, ErrProtocol
	}
	size, hdr := uint64(b1&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return f, 0, ErrShort
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return f, 0, ErrShort
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
		if size>>63 != 0 {
			return f, 0, ErrProtocol
		}
	}
	if IsControl(f.Op) && (size > 125 || !f.Fin) {
		return f, 0, ErrProtocol
	}
	if size > uint64(max) || size > math.MaxInt-14 {
		return f, 0, ErrTooBig
	}
	total := hdr + 4 + int(size)
	if len(b) < total {
		if len(b) < hdr+4 {
			return f, 0, ErrShort
		}
		return f, total, ErrShort
	}
	mask := b[hdr : hdr+4]
	f.Payload = b[hdr+4 : total]
	for i := range f.Payload {
		f.Payload[i] ^= mask[i&3]
	}
	return f, total, nil
}

// HeaderLen is the length of a server frame header for a payload of n bytes.
func HeaderLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xffff:
		return 4
	}
	return 10
}

// AppendHeader appends the header of a final, unmasked server frame of op and n payload bytes.
func AppendHeader(dst []byte, op byte, n int) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
}

// AppendFrame appends a final, unmasked server frame.
func AppendFrame(dst []byte, op byte, payload []byte) []byte {
	return append(AppendHeader(dst, op, len(payload)), payload...)
}

// ClosePayload is the payload of a close frame: the code, then the reason.
func ClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// CloseCode returns the code of a close payload; 0 when it carries none.
func CloseCode(payload []byte) int {
	if len(payload) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(payload))
}

// acceptGUID is RFC 6455's fixed suffix of the accept key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AcceptKey is the Sec-WebSocket-Accept answering a Sec-WebSocket-Key.
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + acceptGUID))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ValidKey reports whether a Sec-WebSocket-Key is the base64 of 16 bytes, as RFC 6455 requires.
func ValidKey(key string) bool {
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}
