// Package duty owns the rule of who is on duty: a manager is on duty while at least one of its
// connections (an MQTT client, a Faye client) holds its organisation's `/service/*` (MQTT
// `orgs/<org>/service/+`). The doors only report what their connections subscribe to,
// unsubscribe from, and when they are gone; the Registry decides what that means for duty and
// counts it; the chat domain asks who is on duty.
package duty

import (
	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
)

// holds reports whether holding channel name (a channel name of id's own organisation) puts
// id on duty.
func holds(id auth.Identity, name string) bool {
	return id.Role == auth.Manager && name == channel.ServiceAllPattern
}

// Subscribed reports that holder, a connection of id, now holds channel name of id's
// organisation; a manager taking `/service/*` goes on duty. Reporting a subscription twice is
// harmless, so a door may report every subscription a resumed connection holds.
func (r *Registry) Subscribed(id auth.Identity, name, holder string) {
	if holds(id, name) {
		r.Join(id.Org, id.Subject, holder)
	}
}

// Unsubscribed reports that holder, a connection of id, no longer holds channel name (it
// unsubscribed, or its subscription was refused after all); the manager stays on duty through
// its other connections.
func (r *Registry) Unsubscribed(id auth.Identity, name, holder string) {
	if holds(id, name) {
		r.Leave(id.Org, id.Subject, holder)
	}
}
