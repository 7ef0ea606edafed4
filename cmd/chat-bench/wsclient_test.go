package main

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/convead/chat-server/faye/wsframe"
)

// frame builds one unmasked server frame.
func frame(fin bool, op byte, payload []byte) []byte {
	b := wsframe.AppendFrame(nil, op, payload)
	if !fin {
		b[0] &^= 0x80
	}
	return b
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestWSNext(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	tests := []struct {
		name    string
		in      []byte
		want    []string
		wantErr string
	}{
		{"one text", frame(true, 1, []byte("hello")), []string{"hello"}, ""},
		{"two in one read", cat(frame(true, 1, []byte("a")), frame(true, 1, []byte("b"))), []string{"a", "b"}, ""},
		{"16-bit length", frame(true, 1, big[:300]), []string{string(big[:300])}, ""},
		{"64-bit length", frame(true, 1, big), []string{string(big)}, ""},
		{"fragments", cat(frame(false, 1, []byte("he")), frame(false, 0, []byte("l")), frame(true, 0, []byte("lo"))), []string{"hello"}, ""},
		{"empty first fragment", cat(frame(false, 1, nil), frame(true, 0, []byte("x"))), []string{"x"}, ""},
		{"pong dropped", cat(frame(true, 0xA, []byte("p")), frame(true, 1, []byte("m"))), []string{"m"}, ""},
		{"partial frame waits", frame(true, 1, []byte("hello"))[:4], nil, ""},
		{"partial length waits", frame(true, 1, big)[:5], nil, ""},
		{"close ends", cat(frame(true, 1, []byte("last")), frame(true, 8, nil)), []string{"last"}, "closed by the server"},
		{"masked from server", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, nil, "masked frame"},
		{"continuation first", frame(true, 0, []byte("x")), nil, "out of order"},
		{"text inside a fragmented message", cat(frame(false, 1, []byte("a")), frame(true, 1, []byte("b"))), nil, "out of order"},
		{"oversized", []byte{0x81, 127, 0, 0, 0, 0, 0x10, 0, 0, 1}, nil, "message over"},
		{"unknown opcode", frame(true, 0x3, nil), nil, "unknown opcode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &wsConn{fd: -1, in: append([]byte(nil), tt.in...)}
			var got []string
			var err error
			for {
				var msg []byte
				var ok bool
				msg, ok, err = c.next()
				if err != nil || !ok {
					break
				}
				got = append(got, string(msg))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("messages %q, want %q", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

// A ping is answered with a masked pong that carries its payload.
func TestWSPingAnswered(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := &wsConn{conn: client, fd: -1, in: frame(true, 9, []byte("are you there"))}
	defer c.close()
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 2+4+len("are you there"))
		_, _ = io.ReadFull(server, b)
		got <- b
	}()
	if _, ok, err := c.next(); ok || err != nil {
		t.Fatalf("next on a lone ping: ok %v err %v, want neither", ok, err)
	}
	b := <-got
	if b[0] != 0x8A || b[1] != 0x80|byte(len("are you there")) {
		t.Fatalf("pong header % x, want 8a %x", b[:2], 0x80|len("are you there"))
	}
	payload := b[6:]
	for i := range payload {
		payload[i] ^= b[2+i&3]
	}
	if string(payload) != "are you there" {
		t.Errorf("pong payload %q", payload)
	}
}
