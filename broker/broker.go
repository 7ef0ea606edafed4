// Package broker embeds the MQTT broker (mochi-mqtt) that is the one routing core of the
// server: REST, MQTT and Faye publishes all go through it, and every subscriber, whatever its
// transport, receives from it (docs/design.md "The path of a REST post").
package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	bbolt "go.etcd.io/bbolt"

	"github.com/convead/chat-server/accept"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/ratelimit"
)

// Listener ids: the MQTT TCP (or TLS) listener, and the websocket connections the HTTP server
// hands over.
const (
	ListenerTCP       = "tcp"
	ListenerWebsocket = "ws"
)

// SessionsFile keeps persistent MQTT sessions inside the data folder.
const SessionsFile = "mqtt-sessions.db"

// PublishQoS is the QoS of server-side publishes: subscribers get min(this, their own), so
// QoS 1 subscribers with persistent sessions receive chat events at least once.
const PublishQoS = 1

// readBufferSize is the per-client read buffer (mochi's default: 2 KB).
const readBufferSize = 1024

// Config configures the broker.
type Config struct {
	// Addr is the MQTT TCP address; ":0" picks a free port (see Addr).
	Addr string
	// QueuePerClient bounds the messages waiting to be written to one client; beyond it the
	// broker drops (mochi preallocates this queue per client, so it is also a memory knob).
	QueuePerClient int
	// DataDir keeps persistent sessions (subscriptions and undelivered QoS 1/2 messages of
	// clients that connect with clean-session false) across restarts. Empty: in memory only.
	DataDir string
	// TLS, when set, serves MQTT over TLS on Addr.
	TLS *tls.Config
	// MaxConnsPerIP bounds open connections per client address (0: no limit).
	MaxConnsPerIP int
	// ConnectsPerIP bounds the sockets (CONNECT attempts) an address opens per minute (nil: no
	// limit): each failed CONNECT costs a token check and a log line.
	ConnectsPerIP *ratelimit.Limiter
	// MaxSubscriptions bounds the subscriptions of one client.
	MaxSubscriptions int
	// MaxPacketSize bounds an MQTT packet, fixed header included (0: no limit). mochi
	// allocates a packet's buffer from the length its header announces, so without it a
	// 5-byte header makes the server allocate up to 256 MB.
	MaxPacketSize int
	// ConnectTimeout is how long a socket may take to send its CONNECT (TLS handshake
	// included) before it is closed (0: no limit).
	ConnectTimeout time.Duration
}

// Broker is the embedded MQTT broker.
type Broker struct {
	srv     *mqtt.Server
	cfg     Config
	ln      net.Listener
	accept  *accept.Listener // under ln (and TLS): it says whether ln still accepts
	log     *slog.Logger
	running atomic.Bool
	dropped atomic.Uint64
	// inlineIDs numbers inline subscriptions: mochi keys them by id across all filters.
	inlineIDs atomic.Int64

	counters counters
	// hooks are those added with AddHook, which decide whether a publish may route directly.
	hooks []mqtt.Hook
	// interest holds the MQTT clients' filters; inline the OnPublish functions. A server
	// publish that no client filter matches, and that no hook would see, goes straight to
	// inline (Publish), once direct is set at Start; noDirect keeps every publish on mochi's
	// path (tests compare the two).
	interest *interest
	inline   inlineHandlers
	direct   atomic.Bool
	noDirect bool
	// conns counts the sockets of each address, from accept (so before their CONNECT) to
	// their end.
	conns *ratelimit.Counter
}

// New returns a broker; add hooks, then Start it.
func New(cfg Config, log *slog.Logger) *Broker {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(cfg.QueuePerClient)
	// mochi acks a QoS 1 publish with reason 0x01 (granted QoS 1, no PUBACK code), written only
	// when the ack has properties — which it copies from the publish. Without them: success.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// mochi runs the publish ACL before it resolves an inbound alias (it would check ""):
	// with a maximum of 0 (CONNACK then has none, which means 0), a publish that uses one ends
	// with 0x94 topic alias invalid.
	caps.TopicAliasMaximum = 0
	caps.MaximumPacketSize = uint32(cfg.MaxPacketSize) // checked on the fixed header, before the packet's buffer is allocated
	log = log.With("component", "mqtt")
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: log,
		// Every client keeps its read buffer for life; clients send small packets (acks,
		// pings, commands), and a larger one is read past the buffer.
		ClientNetReadBufferSize: readBufferSize})
	return &Broker{srv: srv, cfg: cfg, log: log, conns: ratelimit.NewCounter(cfg.MaxConnsPerIP), interest: newInterest()}
}

// Server returns the mochi server, for hooks that need to look clients up.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// AddHook adds a broker hook; hooks run in the order they are added.
func (b *Broker) AddHook(h mqtt.Hook) error {
	if err := b.srv.AddHook(h, nil); err != nil {
		return fmt.Errorf("add broker hook %s: %w", h.ID(), err)
	}
	b.hooks = append(b.hooks, h)
	return nil
}

// directable reports whether the hooks let server publishes skip mochi's path at all: none
// sees a publish after it is routed (the cluster hook forwards them all), and each that sees
// one before can say which it passes untouched.
func (b *Broker) directable() bool {
	for _, h := range b.hooks {
		if h.Provides(mqtt.OnPublished) {
			return false
		}
		if _, ok := h.(PublishPasser); h.Provides(mqtt.OnPublish) && !ok {
			return false
		}
	}
	return !b.noDirect
}

// routesDirect reports whether a server publish to topic can reach only the inline
// subscriptions: no MQTT client filter matches it and every OnPublish hook passes it.
func (b *Broker) routesDirect(topic string) bool {
	if !b.direct.Load() || b.interest.matches(topic) {
		return false
	}
	for _, h := range b.hooks {
		if p, ok := h.(PublishPasser); ok && h.Provides(mqtt.OnPublish) && !p.PassesServerPublish(topic) {
			return false
		}
	}
	return true
}

// Start opens the session store, listens on the configured address and serves. Hooks added
// before Start run before the broker's own (drop accounting, session storage).
func (b *Broker) Start() error {
	limits := &limitHook{maxSubs: b.cfg.MaxSubscriptions, maxPacket: uint32(b.cfg.MaxPacketSize)}
	drops := &dropHook{b: b, disconnect: b.srv.DisconnectClient}
	interest := &interestHook{in: b.interest}
	hooks := []mqtt.Hook{&wireFixes{}, drops, &resendOrder{clients: b.srv.Clients}, limits, &statsHook{c: &b.counters}, interest}
	for _, h := range hooks {
		if err := b.srv.AddHook(h, nil); err != nil {
			return fmt.Errorf("add broker hook %s: %w", h.ID(), err)
		}
	}
	if b.cfg.DataDir != "" {
		path := filepath.Join(b.cfg.DataDir, SessionsFile)
		err := b.srv.AddHook(newSessionStore(), &bolt.Options{Path: path, Options: &bbolt.Options{Timeout: 2 * time.Second}})
		if err != nil {
			return fmt.Errorf("open MQTT session store %s (is another server using this data folder?): %w", path, err)
		}
	}
	raw, err := net.Listen("tcp", b.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen MQTT on %s (mqtt.addr): %w", b.cfg.Addr, err)
	}
	// Below TLS (which passes accept errors through): EMFILE must not end the MQTT listener.
	b.accept = accept.New(raw, "mqtt", b.log)
	var ln net.Listener = b.accept
	if b.cfg.TLS != nil {
		ln = tls.NewListener(ln, b.cfg.TLS)
	}
	b.ln = ln
	tcp := &tcpListener{ln: ln, admit: b.admit, serve: b.establish, closeClients: b.closeClients, conns: map[net.Conn]struct{}{}}
	for _, l := range []listeners.Listener{tcp, handedOver{b.closeClients}} {
		if err := b.srv.AddListener(l); err != nil {
			ln.Close()
			return fmt.Errorf("add MQTT listener %s: %w", l.ID(), err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	interest.syncAll(b.srv)
	b.direct.Store(b.directable())
	b.running.Store(true)
	return nil
}

// ServeConn serves one MQTT connection that arrived another way (MQTT over websocket on the
// HTTP port) until it ends.
func (b *Broker) ServeConn(conn net.Conn) error {
	if !b.running.Load() {
		return errors.New("broker not running")
	}
	release, err := b.admit(conn)
	if err != nil {
		return err
	}
	defer release()
	return b.establish(ListenerWebsocket, conn, b.srv.EstablishConnection)
}

// Errors that end a socket at once, before its CONNECT is read.
var (
	errTooManyConns    = errors.New("too many MQTT connections from this address (limits.connections_per_ip)")
	errTooManyConnects = errors.New("too many MQTT connection attempts from this address (limits.mqtt_connects_per_minute_per_ip)")
)

// admit decides whether a socket may be served: within its address's rate of attempts, it
// takes a slot of its address for its whole life, CONNECT included, so that sockets which
// never send one cannot pile up past the limit. The TCP listener admits in its accept loop,
// so sockets take slots in the order the kernel queued them. The caller calls release when
// the socket ends.
func (b *Broker) admit(conn net.Conn) (release func(), err error) {
	ip := hostOf(conn.RemoteAddr().String())
	if !b.cfg.ConnectsPerIP.Allow(ip, time.Now()) {
		conn.Close()
		b.counters.refusedConnects.Add(1)
		return nil, errTooManyConnects
	}
	if !b.conns.Acquire(ip) {
		conn.Close()
		b.counters.refusedConns.Add(1)
		return nil, errTooManyConns
	}
	b.counters.sockets.Add(1)
	return func() { b.counters.sockets.Add(-1); b.conns.Release(ip) }, nil
}

// establish gives an admitted socket until ConnectTimeout to send its CONNECT (mochi then
// replaces the deadline with the client's keep-alive) and serves it until it ends.
func (b *Broker) establish(listener string, conn net.Conn, establish listeners.EstablishFn) error {
	if b.cfg.ConnectTimeout > 0 {
		if err := conn.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout)); err != nil {
			conn.Close()
			return fmt.Errorf("set the CONNECT deadline: %w", err)
		}
	}
	return establish(listener, conn)
}

// hostOf is the address part of host:port.
func hostOf(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// handedOver is the listener of connections passed to ServeConn: it accepts nothing itself,
// but being registered makes the broker close those clients when it stops.
type handedOver struct{ closeClients func(listener string) }

func (handedOver) Init(*slog.Logger) error     { return nil }
func (handedOver) Serve(listeners.EstablishFn) {}
func (handedOver) ID() string                  { return ListenerWebsocket }
func (handedOver) Address() string             { return "" }
func (handedOver) Protocol() string            { return "ws" }
func (h handedOver) Close(listeners.CloseFn)   { h.closeClients(ListenerWebsocket) }

// tcpListener serves MQTT on the TCP (or TLS) listener. mochi's own (listeners.Net) does not
// report the port of ":0", and does not track the goroutines it starts per connection: one
// accepted while the broker closes adds to mochi's client WaitGroup while the broker waits on
// it. This one ends every connection, and waits for their goroutines, before returning from
// Close.
type tcpListener struct {
	ln           net.Listener
	admit        func(conn net.Conn) (release func(), err error)
	serve        func(listener string, conn net.Conn, establish listeners.EstablishFn) error
	closeClients func(listener string)
	log          *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	active sync.WaitGroup
}

func (l *tcpListener) Init(log *slog.Logger) error { l.log = log; return nil }
func (l *tcpListener) ID() string                  { return ListenerTCP }
func (l *tcpListener) Address() string             { return l.ln.Addr().String() }
func (l *tcpListener) Protocol() string            { return "tcp" }

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return // closed, or dead: accept.Listener retried what could pass, and logged it
		}
		release, err := l.admit(conn)
		if err != nil {
			l.log.Debug("mqtt connection refused", "remote", conn.RemoteAddr().String(), "error", err)
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			release()
			conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.active.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.active.Done()
			defer release()
			if err := l.serve(ListenerTCP, conn, establish); err != nil {
				l.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "error", err)
			}
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
		}()
	}
}

// Close stops accepting, disconnects the clients (MQTT 5: server shutting down), ends the
// connections still in their CONNECT, and waits for every connection's goroutine.
func (l *tcpListener) Close(listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	_ = l.ln.Close()
	l.closeClients(ListenerTCP)
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.active.Wait()
}

// closeClients disconnects the clients of a listener that closes. mochi's own
// (closeListenerClients, v2.7.9) read-locks the client list twice (GetByListener calls Len):
// a connection ending at that moment queues for the write lock between the two, and the
// shutdown deadlocks. GetAll read-locks once.
func (b *Broker) closeClients(listener string) {
	for _, cl := range b.srv.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

// dropHook handles messages the broker drops because a client's queue is full. A slow client
// must not stall the publisher, and must not be left unaware of a gap either: it is
// disconnected (MQTT 5: reason 0x97, quota exceeded), reconnects, and catches up — a persistent
// session from its stored messages, others from the history API.
type dropHook struct {
	mqtt.HookBase
	b          *Broker
	disconnect func(cl *mqtt.Client, code packets.Code) error
	ending     sync.Map // clients being disconnected, so that each is ended once
}

func (h *dropHook) ID() string           { return "chat-drops" }
func (h *dropHook) Provides(b byte) bool { return b == mqtt.OnPublishDropped || b == mqtt.OnDisconnect }

func (h *dropHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	n := h.b.dropped.Add(1)
	if _, already := h.ending.LoadOrStore(cl, true); already || cl.Net.Inline {
		return
	}
	h.b.counters.cut.Add(1)
	h.b.log.Warn("mqtt client queue full: disconnecting it", "client", cl.ID, "topic", pk.TopicName, "dropped_total", n)
	// Not in this goroutine: it is the publisher's, and the client's socket is the slow part.
	go func() { _ = h.disconnect(cl, packets.ErrQuotaExceeded) }()
}

func (h *dropHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) { h.ending.Delete(cl) }

// wireFixes corrects two packets mochi (v2.7.9) writes:
//   - DISCONNECT to MQTT 3.1.1 clients, where only the client may send one: DisconnectClient
//     writes it to every client before closing (refusals, token expiry, full queue, session
//     takeover, shutdown). A packet larger than Mods.MaxSize is refused by WritePacket before
//     any byte is written, and the connection still closes.
//   - CONNACK without Shared Subscription Available, which MQTT 5 reads as available: the ACL
//     knows no `$share/<group>/` filters and refuses them.
type wireFixes struct{ mqtt.HookBase }

func (*wireFixes) ID() string           { return "chat-wire-fixes" }
func (*wireFixes) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (*wireFixes) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch {
	case pk.FixedHeader.Type == packets.Disconnect && cl.Properties.ProtocolVersion < 5:
		pk.Mods.MaxSize = 1 // an encoded DISCONNECT is 2 bytes
	case pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5:
		pk.Properties.SharedSubAvailable, pk.Properties.SharedSubAvailableFlag = 0, true
	}
	return pk
}

// Clients is the number of clients the broker knows (connected, or kept sessions), the
// server's own inline client excluded.
func (b *Broker) Clients() int { return b.srv.Clients.Len() - 1 }

// Addr is the bound MQTT address, once started.
func (b *Broker) Addr() net.Addr {
	if b.ln == nil {
		return nil
	}
	return b.ln.Addr()
}

// Ready reports whether the broker is serving, its MQTT listener included.
func (b *Broker) Ready() error {
	if !b.running.Load() {
		return errors.New("broker not running")
	}
	return b.accept.Err()
}

// Dead is closed when the MQTT listener stops accepting for good (not by Close); Ready then
// says why.
func (b *Broker) Dead() <-chan struct{} { return b.accept.Dead() }

// Publish sends payload to the channel name of organisation org, as a server-side publish that
// every matching subscriber receives (ACL hooks still decide per subscriber).
func (b *Broker) Publish(org, name string, payload []byte) error {
	topic, err := channel.ToTopic(org, name)
	if err != nil {
		return fmt.Errorf("publish to %s of %s: %w", name, org, err)
	}
	if b.routesDirect(topic) {
		b.publishDirect(topic, payload)
		return nil
	}
	if err := b.srv.Publish(topic, payload, false, PublishQoS); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// publishDirect does what mochi's path does for a publish only inline subscriptions match:
// it calls them, counts a server publish (statsHook.OnPublished), and bumps the packets and
// messages received that mochi's InjectPacket counts in its $SYS info. It skips mochi's
// gathering of the subscribers into fresh maps and its copies of the packet.
func (b *Broker) publishDirect(topic string, payload []byte) {
	for _, fn := range b.inline.all() {
		fn(topic, payload)
	}
	b.counters.serverPublishes.Add(1)
	atomic.AddInt64(&b.srv.Info.PacketsReceived, 1)
	atomic.AddInt64(&b.srv.Info.MessagesReceived, 1)
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
	b.inline.add(fn)
	return nil
}

// Close disconnects every client and stops listening.
func (b *Broker) Close() error {
	if !b.running.Swap(false) {
		return nil
	}
	return b.srv.Close()
}
