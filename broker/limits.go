package broker

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// overLimitFilter replaces a subscription beyond the per-client limit: being an invalid filter,
// it makes the broker refuse that one subscription (SUBACK 0x8F on MQTT 5, 0x80 on 3.1.1)
// while granting the others of the same packet.
const overLimitFilter = "#/too-many-subscriptions"

// limitHook bounds subscriptions per client and advertises the maximum packet size.
// Connections per address are counted per socket (Broker.serve), from before their CONNECT.
type limitHook struct {
	mqtt.HookBase
	maxSubs   int
	maxPacket uint32
}

func (h *limitHook) ID() string { return "chat-limits" }

func (h *limitHook) Provides(b byte) bool {
	return b == mqtt.OnSubscribe || b == mqtt.OnPacketEncode
}

// OnPacketEncode tells MQTT 5 clients the maximum packet size in CONNACK (mochi enforces it
// but does not advertise it), so that a well-behaved client does not get disconnected for a
// packet it could have known was too large. 3.1.1 CONNACKs carry no properties.
func (h *limitHook) OnPacketEncode(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && h.maxPacket > 0 {
		pk.Properties.MaximumPacketSize = h.maxPacket
	}
	return pk
}

// OnSubscribe refuses the filters of a packet that would take the client past its limit.
func (h *limitHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Net.Inline {
		return pk
	}
	n := cl.State.Subscriptions.Len()
	for i, sub := range pk.Filters {
		if _, held := cl.State.Subscriptions.Get(sub.Filter); held {
			continue
		}
		if n >= h.maxSubs {
			pk.Filters[i].Filter = overLimitFilter
			continue
		}
		n++
	}
	return pk
}
