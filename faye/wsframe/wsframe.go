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
	"fmt"
	"math"
	"unicode/utf8"
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
	CloseInvalidPayload  = 1007
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
// number of bytes the frame took. On ErrShort, n is the total length the frame announces once
// its header is complete (0 while the header itself is incomplete): what the peer claims, not
// what it sent, so never a size to allocate. Client frames must be masked; payloads over max
// bytes are refused before any of them is buffered.
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

// CloseError is a reason to close the connection: the code to send and why.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("websocket: close %d: %s", e.Code, e.Reason) }

// Message is a complete data message, its fragments joined.
type Message struct {
	Op   byte // OpText or OpBinary
	Data []byte
}

// Assembler joins the data frames of one connection into messages (RFC 6455 section 5.4):
// fragments in order, none inside another message, at most Max bytes in all, text valid
// UTF-8 once whole (a fragment may end inside a character). The zero value with Max set is
// ready.
type Assembler struct {
	Max    int
	buf    []byte
	op     byte
	active bool
}

// Add takes a data frame (text, binary or continuation); ok reports a complete message. Its
// Data is a copy: f's payload lives in a read buffer.
func (a *Assembler) Add(f Frame) (m Message, ok bool, err error) {
	switch f.Op {
	case OpText, OpBinary:
		if a.active {
			return m, false, &CloseError{CloseProtocolError, "a new message inside a fragmented one"}
		}
		if len(f.Payload) > a.Max {
			return m, false, &CloseError{CloseMessageTooBig, "message too big"}
		}
		a.op, a.buf = f.Op, append([]byte(nil), f.Payload...)
	case OpContinuation:
		switch {
		case !a.active:
			return m, false, &CloseError{CloseProtocolError, "a continuation without a message"}
		case len(a.buf)+len(f.Payload) > a.Max:
			a.active, a.buf = false, nil
			return m, false, &CloseError{CloseMessageTooBig, "message too big"}
		}
		a.buf = append(a.buf, f.Payload...)
	default:
		return m, false, &CloseError{CloseProtocolError, "not a data frame"}
	}
	if a.active = !f.Fin; a.active {
		return m, false, nil
	}
	m, a.buf = Message{Op: a.op, Data: a.buf}, nil
	if m.Op == OpText && !utf8.Valid(m.Data) {
		return Message{}, false, &CloseError{CloseInvalidPayload, "text is not valid UTF-8"}
	}
	return m, true, nil
}

// CheckClose judges a client's close payload (RFC 6455 sections 5.5.1 and 7.4): the code to
// answer with, its own when it is valid.
func CheckClose(payload []byte) *CloseError {
	switch {
	case len(payload) == 0:
		return &CloseError{CloseNormal, ""}
	case len(payload) == 1:
		return &CloseError{CloseProtocolError, "a close payload of one byte"}
	case !ValidCloseCode(CloseCode(payload)):
		return &CloseError{CloseProtocolError, "invalid close code"}
	case !utf8.Valid(payload[2:]):
		return &CloseError{CloseInvalidPayload, "close reason is not valid UTF-8"}
	}
	return &CloseError{Code: CloseCode(payload)}
}

// ValidCloseCode reports whether a peer may send code: a defined one (1000–1003, 1007–1014),
// or one for libraries and applications (3000–4999). 1004–1006 and 1015 are never sent.
func ValidCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code < 1000 || code > 1014:
		return false
	}
	return code < 1004 || code > 1006
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
