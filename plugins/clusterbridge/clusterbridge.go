// Package clusterbridge is the broker hook of cluster mode: it hands every publish that enters the
// broker from this node to the other nodes, injects what they send, and reports the MQTT
// subscriptions of this node's clients as interest, so the node receives only what they need.
package clusterbridge

import (
	"bytes"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Node is the cluster membership (cluster.Node).
type Node interface {
	Forward(topic string, payload []byte, qos byte, retain bool)
	// AddFilter reports whether the node subscribed to something new; WaitInterest then waits
	// until NATS has it.
	AddFilter(filter string) bool
	RemoveFilter(filter string)
	WaitInterest()
}

// InjectorID is the client id of publishes that came from other nodes.
const InjectorID = "chat-cluster-inject"

// Hook is the cluster hook. Add it to the broker before it starts.
type Hook struct {
	mqtt.HookBase
	node     Node
	srv      *mqtt.Server
	injector *mqtt.Client

	mu      sync.Mutex
	filters map[string]map[string]bool // client id → its filters, as reported to the node
}

// New returns the hook for srv.
func New(node Node, srv *mqtt.Server) *Hook {
	return &Hook{node: node, srv: srv, injector: srv.NewClient(nil, "local", InjectorID, true),
		filters: map[string]map[string]bool{}}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "chat-cluster" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPublished, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnClientExpired}, []byte{b})
}

// Inject publishes what another node forwarded into this broker. The injecting client is
// recognised by OnPublished, so the publish is not forwarded back.
func (h *Hook) Inject(topic string, payload []byte, qos byte, retain bool) error {
	return h.srv.InjectPacket(h.injector, packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    uint16(qos), // as mochi's own Publish: a packet id makes a QoS>0 packet valid
	})
}

// OnPublished forwards every publish of this node — its clients', and the server's own —
// except those injected from other nodes and those a hook consumed (MQTT commands).
func (h *Hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if cl == h.injector || pk.Ignore || strings.HasPrefix(pk.TopicName, "$") {
		return
	}
	h.node.Forward(pk.TopicName, pk.Payload, pk.FixedHeader.Qos, pk.FixedHeader.Retain)
}

// OnSubscribed runs before the broker acknowledges the subscription: the node subscribes in
// NATS first.
func (h *Hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) { h.sync(cl) }

// OnUnsubscribed implements mqtt.Hook.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) { h.sync(cl) }

// OnSessionEstablished counts the subscriptions a client resumes (or drops, with a clean start).
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) { h.sync(cl) }

// OnDisconnect forgets a client whose session ends with the connection; a kept session keeps
// its interest, since the broker queues for it.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if expire && !cl.IsTakenOver() {
		h.forget(cl.ID)
	}
}

// OnClientExpired forgets a kept session that expired.
func (h *Hook) OnClientExpired(cl *mqtt.Client) { h.forget(cl.ID) }

// sync reports the difference between what the client holds now and what was reported.
func (h *Hook) sync(cl *mqtt.Client) {
	if cl.Net.Inline {
		return // the server's own subscriptions (the Faye bridge's "#") report their interest themselves
	}
	now := map[string]bool{}
	for f := range cl.State.Subscriptions.GetAll() {
		now[f] = true
	}
	// Under the lock: two events of one client must not apply their differences crosswise.
	h.mu.Lock()
	before := h.filters[cl.ID]
	if len(now) == 0 {
		delete(h.filters, cl.ID)
	} else {
		h.filters[cl.ID] = now
	}
	added := false
	for f := range now {
		if !before[f] {
			added = h.node.AddFilter(f) || added
		}
	}
	for f := range before {
		if !now[f] {
			h.node.RemoveFilter(f)
		}
	}
	h.mu.Unlock()
	if added {
		h.node.WaitInterest()
	}
}

func (h *Hook) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for f := range h.filters[id] {
		h.node.RemoveFilter(f)
	}
	delete(h.filters, id)
}
