package mqttreason

import (
	"errors"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/chat"
)

func TestCode(t *testing.T) {
	down := &chat.Error{Kind: chat.KindUnavailable, Code: "store_unavailable", Message: "retry later"}
	limited := &chat.Error{Kind: chat.KindRateLimited, Code: "rate_limited", Message: "slow down"}
	cases := []struct {
		err    error
		packet byte
		want   byte
	}{
		{chat.Forbidden("no"), packets.Connack, 0x87},
		{chat.Forbidden("no"), packets.Puback, 0x87},
		{&chat.Error{Kind: chat.KindNotFound}, packets.Suback, 0x87},
		{chat.Unauthenticated("who"), packets.Puback, 0x87},
		{chat.Invalid("bad", "bad"), packets.Puback, 0x83},
		{limited, packets.Puback, 0x97},
		{down, packets.Connack, 0x88},
		{down, packets.Puback, 0x80}, // PUBACK has no "server unavailable"
		{errors.New("a bug"), packets.Puback, 0x80},
	}
	for _, tc := range cases {
		if got := Code(tc.err, tc.packet); got.Code != tc.want {
			t.Errorf("Code(%v, %d) = %#x, want %#x", tc.err, tc.packet, got.Code, tc.want)
		}
	}
}
