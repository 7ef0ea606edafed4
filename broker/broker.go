// Package broker embeds the MQTT broker (mochi-mqtt) that is the one routing core of the
// server: REST, MQTT and Faye publishes all go through it, and every subscriber, whatever its
// transport, receives from it.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/channel"
)

// ListenerTCP is the id of the MQTT TCP listener.
const ListenerTCP = "tcp"

// PublishQoS is the QoS of server-side publishes: subscribers get min(this, their own), so
// QoS 1 subscribers with persistent sessions receive chat events at least once.
const PublishQoS = 1

// Config configures the broker.
type Config struct {
	// Addr is the MQTT TCP address; ":0" picks a free port (see Addr).
	Addr string
	// QueuePerClient bounds the messages waiting to be written to one client; beyond it the
	// broker drops (mochi preallocates this queue per client, so it is also a memory knob).
	QueuePerClient int
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv     *mqtt.Server
	cfg     Config
	ln      net.Listener
	running atomic.Bool
	// inlineIDs numbers inline subscriptions: mochi keys them by id across all filters.
	inlineIDs atomic.Int64
}

// New returns a broker; add hooks, then Start it.
func New(cfg Config, log *slog.Logger) *Broker {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(cfg.QueuePerClient)
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: log.With("component", "mqtt")})
	return &Broker{srv: srv, cfg: cfg}
}

// Server returns the mochi server, for hooks that need to look clients up.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// AddHook adds a broker hook; hooks run in the order they are added.
func (b *Broker) AddHook(h mqtt.Hook) error {
	if err := b.srv.AddHook(h, nil); err != nil {
		return fmt.Errorf("add broker hook %s: %w", h.ID(), err)
	}
	return nil
}

// Start listens on the configured address and serves.
func (b *Broker) Start() error {
	ln, err := net.Listen("tcp", b.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen MQTT on %s (mqtt.addr): %w", b.cfg.Addr, err)
	}
	b.ln = ln
	// listeners.NewNet with our own listener, because NewTCP does not report the port of ":0".
	if err := b.srv.AddListener(listeners.NewNet(ListenerTCP, ln)); err != nil {
		ln.Close()
		return fmt.Errorf("add MQTT listener: %w", err)
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	b.running.Store(true)
	return nil
}

// Addr is the bound MQTT address, once started.
func (b *Broker) Addr() net.Addr {
	if b.ln == nil {
		return nil
	}
	return b.ln.Addr()
}

// Ready reports whether the broker is serving.
func (b *Broker) Ready() error {
	if !b.running.Load() {
		return errors.New("broker not running")
	}
	return nil
}

// Publish sends payload to the channel name of organisation org, as a server-side publish that
// every matching subscriber receives (ACL hooks still decide per subscriber).
func (b *Broker) Publish(org, name string, payload []byte) error {
	topic, err := channel.ToTopic(org, name)
	if err != nil {
		return fmt.Errorf("publish to %s of %s: %w", name, org, err)
	}
	if err := b.srv.Publish(topic, payload, false, PublishQoS); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// OnPublish calls fn with every publish that passes through the broker, from any client or
// from the server, in the publisher's goroutine: fn must not block. It is one inline
// subscription to "#", so a bridge with its own fan-out (Faye) costs the broker one subscriber
// however many clients it serves.
func (b *Broker) OnPublish(fn func(topic string, payload []byte)) error {
	id := int(b.inlineIDs.Add(1))
	err := b.srv.Subscribe("#", id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return fmt.Errorf("subscribe the broker's publishes: %w", err)
	}
	return nil
}

// Close disconnects every client and stops listening.
func (b *Broker) Close() error {
	if !b.running.Swap(false) {
		return nil
	}
	return b.srv.Close()
}
