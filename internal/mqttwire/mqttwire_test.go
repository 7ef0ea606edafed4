package mqttwire

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestConnect(t *testing.T) {
	want := []byte{0x10, 17, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 30, 0, 1, 'w', 0, 2, 't', 'k'}
	if got := Connect(CleanSession|PasswordFlag, 30*time.Second, "w", "tk"); !bytes.Equal(got, want) {
		t.Errorf("Connect = %v, want %v", got, want)
	}
}

func TestPacketRemainingLength(t *testing.T) {
	for n, want := range map[int][]byte{0: {0}, 127: {0x7f}, 128: {0x80, 1}, 16383: {0xff, 0x7f}, 16384: {0x80, 0x80, 1}} {
		got := Packet(0x30, []byte(strings.Repeat("x", n)))
		if !bytes.Equal(got[1:1+len(want)], want) || len(got) != 1+len(want)+n {
			t.Errorf("remaining length %d = %v, want %v", n, got[1:1+len(want)], want)
		}
	}
}
