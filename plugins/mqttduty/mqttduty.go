// Package mqttduty is the MQTT door's adapter to package duty: it reports what each MQTT
// connection subscribes to, unsubscribes from, and when it is gone, as channel names of the
// client's organisation; package duty decides what that means for duty.
package mqttduty

import (
	"bytes"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
)

// Duty hears what connections hold (package duty's Registry).
type Duty interface {
	Subscribed(id auth.Identity, name, holder string)
	Unsubscribed(id auth.Identity, name, holder string)
	Gone(holder string)
}

// Identities tells who a connected client is.
type Identities interface {
	Identity(cl *mqtt.Client) (auth.Identity, bool)
}

// Hook is the duty hook.
type Hook struct {
	mqtt.HookBase
	duty Duty
	ids  Identities
}

// New returns the hook.
func New(duty Duty, ids Identities) *Hook { return &Hook{duty: duty, ids: ids} }

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "chat-duty" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnDisconnect, mqtt.OnSessionEstablished}, []byte{b})
}

// holder names one connection. The pointer tells a new connection from the one it takes over,
// whose disconnect may be reported after the new one subscribed.
func holder(cl *mqtt.Client) string { return fmt.Sprintf("mqtt:%s:%p", cl.ID, cl) }

// channels calls fn with the client's identity and the channel name of each filter that is
// one of its own organisation's; a filter of another organisation or without a Faye channel
// holds nothing (the ACL refuses it anyway).
func (h *Hook) channels(cl *mqtt.Client, filters []string, fn func(id auth.Identity, name string)) {
	id, ok := h.ids.Identity(cl)
	if !ok {
		return
	}
	for _, f := range filters {
		if org, name, err := channel.FromTopic(f); err == nil && org == id.Org {
			fn(id, name)
		}
	}
}

func filtersOf(pk packets.Packet) []string {
	out := make([]string, len(pk.Filters))
	for i, sub := range pk.Filters {
		out[i] = sub.Filter
	}
	return out
}

// OnSubscribe reports a subscribe as soon as the client asks for it. It runs before the broker
// sends SUBACK, so a manager is on duty by the time its client sees the ack.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.channels(cl, filtersOf(pk), func(id auth.Identity, name string) { h.duty.Subscribed(id, name, holder(cl)) })
	return pk
}

// OnSubscribed takes back the subscriptions the broker refused after all.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	var refused []string
	for i, sub := range pk.Filters {
		if i < len(codes) && codes[i] >= packets.ErrUnspecifiedError.Code {
			refused = append(refused, sub.Filter)
		}
	}
	h.channels(cl, refused, func(id auth.Identity, name string) { h.duty.Unsubscribed(id, name, holder(cl)) })
}

// OnUnsubscribed reports dropped subscriptions.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.channels(cl, filtersOf(pk), func(id auth.Identity, name string) { h.duty.Unsubscribed(id, name, holder(cl)) })
}

// OnSessionEstablished reports the subscriptions a resumed session still holds, so a manager
// whose session holds `orgs/<org>/service/+` is back on duty.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	held := cl.State.Subscriptions.GetAll()
	filters := make([]string, 0, len(held))
	for f := range held {
		filters = append(filters, f)
	}
	h.channels(cl, filters, func(id auth.Identity, name string) { h.duty.Subscribed(id, name, holder(cl)) })
}

// OnDisconnect reports the connection gone: everything it held is off duty.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.duty.Gone(holder(cl)) }
