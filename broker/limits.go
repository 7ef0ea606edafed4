package broker

import (
	"net"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/ratelimit"
)

// overLimitFilter replaces a subscription beyond the per-client limit: being an invalid filter,
// it makes the broker refuse that one subscription (SUBACK 0x8F on MQTT 5, 0x80 on 3.1.1)
// while granting the others of the same packet.
const overLimitFilter = "#/too-many-subscriptions"

// limitHook bounds MQTT connections per IP address and subscriptions per client.
type limitHook struct {
	mqtt.HookBase
	conns       *ratelimit.Counter
	maxSubs     int
	sendConnack func(cl *mqtt.Client, code packets.Code, present bool, props *packets.Properties) error
}

func (h *limitHook) ID() string { return "chat-limits" }

func (h *limitHook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribe:
		return true
	}
	return false
}

func remoteIP(cl *mqtt.Client) string {
	host, _, err := net.SplitHostPort(cl.Net.Remote)
	if err != nil {
		return cl.Net.Remote
	}
	return host
}

// OnConnect refuses a connection from an address that holds its maximum already. The slot is
// taken once the session is established (a refused login must not hold one).
func (h *limitHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if h.conns.Full(remoteIP(cl)) {
		code := packets.ErrServerUnavailable // MQTT 3.1.1 has no "quota exceeded"
		if cl.Properties.ProtocolVersion == 5 {
			code = packets.ErrQuotaExceeded
		}
		_ = h.sendConnack(cl, code, false, nil)
		return code
	}
	return nil
}

func (h *limitHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if !cl.Net.Inline {
		h.conns.Acquire(remoteIP(cl))
	}
}

func (h *limitHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if !cl.Net.Inline {
		h.conns.Release(remoteIP(cl))
	}
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
