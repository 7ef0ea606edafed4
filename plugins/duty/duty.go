// Package duty is the broker hook that puts MQTT managers on and off duty: a manager is on duty
// while its connection holds `orgs/<org>/service/+`, and off duty as soon as it unsubscribes or
// disconnects.
package duty

import (
	"bytes"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
)

// Registry records who is on duty.
type Registry interface {
	Join(org, manager, holder string)
	Leave(org, manager, holder string)
	LeaveAll(holder string)
}

// Identities tells who a connected client is.
type Identities interface {
	Identity(cl *mqtt.Client) (auth.Identity, bool)
}

// Hook is the on-duty hook.
type Hook struct {
	mqtt.HookBase
	reg Registry
	ids Identities
}

// New returns the hook.
func New(reg Registry, ids Identities) *Hook { return &Hook{reg: reg, ids: ids} }

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "chat-duty" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnDisconnect, mqtt.OnSessionEstablished}, []byte{b})
}

// holder names one connection. The pointer tells a new connection from the one it takes over,
// whose disconnect may be reported after the new one subscribed.
func holder(cl *mqtt.Client) string { return fmt.Sprintf("mqtt:%s:%p", cl.ID, cl) }

// dutyFilter returns the service filter of the client's organisation if the client is a manager.
func (h *Hook) dutyFilter(cl *mqtt.Client) (auth.Identity, string, bool) {
	id, ok := h.ids.Identity(cl)
	if !ok || id.Role != auth.Manager {
		return id, "", false
	}
	f, err := channel.ToTopic(id.Org, channel.ServiceAllPattern)
	return id, f, err == nil
}

// OnSubscribe puts a manager on duty when it asks for its service subscription. It runs before
// the broker sends SUBACK, so the manager is on duty by the time its client sees the ack.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if id, filter, ok := h.dutyFilter(cl); ok {
		for _, sub := range pk.Filters {
			if sub.Filter == filter {
				h.reg.Join(id.Org, id.Subject, holder(cl))
			}
		}
	}
	return pk
}

// OnSubscribed takes the duty back if the broker refused the service subscription after all.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	id, filter, ok := h.dutyFilter(cl)
	if !ok {
		return
	}
	for i, sub := range pk.Filters {
		if sub.Filter == filter && i < len(codes) && codes[i] >= packets.ErrUnspecifiedError.Code {
			h.reg.Leave(id.Org, id.Subject, holder(cl))
		}
	}
}

// OnUnsubscribed takes a manager off duty when it drops the service subscription.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	id, filter, ok := h.dutyFilter(cl)
	if !ok {
		return
	}
	for _, sub := range pk.Filters {
		if sub.Filter == filter {
			h.reg.Leave(id.Org, id.Subject, holder(cl))
		}
	}
}

// OnSessionEstablished puts a manager back on duty when it resumes a session that still holds
// the service subscription.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	id, filter, ok := h.dutyFilter(cl)
	if !ok {
		return
	}
	if _, held := cl.State.Subscriptions.Get(filter); held {
		h.reg.Join(id.Org, id.Subject, holder(cl))
	}
}

// OnDisconnect takes everything the connection held off duty.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.reg.LeaveAll(holder(cl)) }
