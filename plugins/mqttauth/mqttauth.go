// Package mqttauth is the broker hook that authenticates MQTT clients with the same JWTs as
// REST and Faye (the token is the CONNECT password; the username is free) and applies the
// chat ACL to every subscribe, publish and delivery.
package mqttauth

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
)

// Verifier turns a token into an identity.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
}

// ACL decides subscribes and publishes on channel names of the identity's organisation.
type ACL interface {
	CanSubscribe(ctx context.Context, id auth.Identity, name string) error
	CanPublish(ctx context.Context, id auth.Identity, name string) error
}

// aclTimeout bounds one ACL decision that needs the store.
const aclTimeout = 2 * time.Second

type session struct {
	cl *mqtt.Client
	id auth.Identity
}

// Hook is the authentication and ACL hook.
type Hook struct {
	mqtt.HookBase
	verifier Verifier
	acl      ACL
	clients  *mqtt.Clients
	log      *slog.Logger

	mu       sync.RWMutex
	sessions map[string]session // client id → its connection and owner
}

// New returns the hook. clients is the broker's client list, used to keep client ids owned by
// the identity that holds them.
func New(v Verifier, acl ACL, clients *mqtt.Clients, log *slog.Logger) *Hook {
	return &Hook{verifier: v, acl: acl, clients: clients, log: log, sessions: map[string]session{}}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "chat-auth" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect}, []byte{b})
}

// OnConnectAuthenticate accepts a client whose password is a valid token. A client id that the
// broker still knows (connected, or a kept session) may only be taken by the same identity:
// otherwise a visitor could take over a manager's session and its subscriptions.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, err := h.verifier.Verify(string(pk.Connect.Password))
	if err != nil {
		h.log.Info("mqtt connect refused", "client", cl.ID, "remote", cl.Net.Remote, "reason", err.Error())
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.sessions[cl.ID]; ok && old.id != id {
		if _, known := h.clients.Get(cl.ID); known {
			h.log.Warn("mqtt connect refused: client id held by another identity", "client", cl.ID, "identity", id.String(), "remote", cl.Net.Remote)
			return false
		}
	}
	h.sessions[cl.ID] = session{cl: cl, id: id}
	return true
}

// Identity returns the identity of a connected client.
func (h *Hook) Identity(cl *mqtt.Client) (auth.Identity, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s, ok := h.sessions[cl.ID]
	if !ok || s.cl != cl {
		return auth.Identity{}, false
	}
	return s.id, true
}

// OnACLCheck applies the chat ACL. It runs for subscribe filters, for publishes, and for each
// delivery with the concrete topic. Topics outside `orgs/<own org>/` ($SYS included) and topics
// with no Faye equivalent are refused to everyone.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	id, ok := h.Identity(cl)
	if !ok {
		return false
	}
	org, name, err := channel.FromTopic(topic)
	if err != nil || org != id.Org {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), aclTimeout)
	defer cancel()
	if write {
		err = h.acl.CanPublish(ctx, id, name)
	} else {
		err = h.acl.CanSubscribe(ctx, id, name)
	}
	if err != nil {
		h.log.Debug("mqtt acl refused", "client", cl.ID, "identity", id.String(), "topic", topic, "write", write, "reason", err.Error())
		return false
	}
	return true
}

// OnDisconnect forgets a client whose session ends with the connection.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire {
		return // a kept session stays owned by its identity
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s, ok := h.sessions[cl.ID]; ok && s.cl == cl {
		delete(h.sessions, cl.ID)
	}
}
