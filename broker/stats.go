package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Publish sources, as counted in Stats.Publishes.
const (
	SourceClient = "mqtt_client" // a PUBLISH from an MQTT client
	SourceServer = "server"      // Publish: the REST API, the Faye door, the chat domain
)

// counters are the broker's running totals, bumped by statsHook and dropHook.
type counters struct {
	clientPublishes atomic.Uint64
	serverPublishes atomic.Uint64
	delivered       atomic.Uint64
	cut             atomic.Uint64 // clients disconnected because their queue overflowed
	sockets         atomic.Int64  // admitted sockets still open, CONNECT not yet read included
	refusedConns    atomic.Uint64 // sockets closed by limits.connections_per_ip
	refusedConnects atomic.Uint64 // sockets closed by limits.mqtt_connects_per_minute_per_ip
}

// Stats are the broker's live counts and totals, read at once for metrics.
type Stats struct {
	// ClientsByListener counts connected clients by listener (ListenerTCP, ListenerWebsocket).
	ClientsByListener map[string]int
	// KeptSessions counts persistent sessions whose client is not connected.
	KeptSessions int
	// Subscriptions counts the filters held by clients, kept sessions included.
	Subscriptions int
	// Inflight is the number of QoS 1/2 messages sent or queued but not yet acknowledged, over
	// all clients; InflightMax the most of one client.
	Inflight, InflightMax int
	// Publishes are routed publishes since start, by source (SourceClient, SourceServer).
	Publishes map[string]uint64
	// Delivered counts PUBLISH packets written to clients (QoS resends included); Dropped the
	// messages dropped on a full client queue; Cut the clients disconnected for it.
	Delivered, Dropped, Cut uint64
	// Sockets counts the open MQTT sockets, those that have not sent their CONNECT yet
	// included: far above the clients, it shows sockets held open without a session.
	Sockets int
	// Refused counts sockets closed before their CONNECT by a per-address limit, by the
	// limit's key (RefusedConnections, RefusedAttempts).
	Refused map[string]uint64
}

// Keys of Stats.Refused: the configuration key of the limit that closed the socket.
const (
	RefusedConnections = "connections_per_ip"
	RefusedAttempts    = "mqtt_connects_per_minute_per_ip"
)

// Stats walks the clients once; its cost grows with their number, so it is for a scrape every
// few seconds, not for a hot path.
func (b *Broker) Stats() Stats {
	st := Stats{ClientsByListener: map[string]int{ListenerTCP: 0, ListenerWebsocket: 0}}
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Inline {
			continue
		}
		if cl.Closed() {
			st.KeptSessions++
		} else {
			st.ClientsByListener[cl.Net.Listener]++
		}
		st.Subscriptions += cl.State.Subscriptions.Len()
		n := cl.State.Inflight.Len()
		st.Inflight += n
		st.InflightMax = max(st.InflightMax, n)
	}
	st.Publishes = map[string]uint64{SourceClient: b.counters.clientPublishes.Load(), SourceServer: b.counters.serverPublishes.Load()}
	st.Delivered = b.counters.delivered.Load()
	st.Dropped = b.dropped.Load()
	st.Cut = b.counters.cut.Load()
	st.Sockets = int(b.counters.sockets.Load())
	st.Refused = map[string]uint64{RefusedConnections: b.counters.refusedConns.Load(), RefusedAttempts: b.counters.refusedConnects.Load()}
	return st
}

// statsHook counts publishes as the broker routes them and PUBLISH packets as it writes them.
type statsHook struct {
	mqtt.HookBase
	c *counters
}

func (h *statsHook) ID() string { return "chat-stats" }

func (h *statsHook) Provides(b byte) bool { return b == mqtt.OnPublished || b == mqtt.OnPacketSent }

func (h *statsHook) OnPublished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		h.c.serverPublishes.Add(1)
		return
	}
	h.c.clientPublishes.Add(1)
}

func (h *statsHook) OnPacketSent(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.c.delivered.Add(1)
	}
}
