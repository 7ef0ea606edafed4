// Package cluster joins identical nodes over NATS: what is published into one node's broker
// reaches the subscribers of every other node, managers on duty on one node are seen by all,
// and a Faye long-poll that reaches the wrong node is answered by the node that owns its client.
// Scale comes from NATS (and from MongoDB for the data); there is no clustering of our own
// (docs/design.md "Cluster model").
//
// Forwarding. Every publish that enters a node's broker from a local door (REST, Faye, MQTT,
// server-side) is published once to NATS under its mapped subject (package subject) with the
// origin node and a sequence number in headers. A node injects what it receives into its own
// broker through a dedicated inline client, and publishes from that client are never forwarded
// again: no loops. The connection uses NATS "no echo", so the origin never receives its own
// publishes, and the origin headers drop any that would.
//
// Interest. A node subscribes in NATS only to the subjects of its local subscriptions: MQTT
// filters of its clients and the channels of its Faye clients, counted, subscribed on the first
// and unsubscribed after the last. So a publish crosses the network only to nodes with a
// subscriber, and traffic grows with interest, not with the number of nodes. Overlapping local
// filters (orgs/O/service/+ and orgs/O/service/V) make NATS deliver a message once per matching
// subscription; all subscriptions feed one ordered queue, and a per-origin window of sequence
// numbers injects each message exactly once, in the order NATS delivered it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/cluster/subject"
)

// Headers of a forwarded publish.
const (
	HeaderOrigin = "Chat-Origin" // node name and boot id: "node-1:9f2c…"
	HeaderSeq    = "Chat-Seq"    // 1, 2, 3, … per origin
	HeaderQoS    = "Chat-QoS"
	HeaderRetain = "Chat-Retain"
)

// inboxSize bounds the forwarded publishes waiting to be injected; beyond it NATS reports a slow
// consumer and drops (logged): a node that cannot keep up must not take the others down.
const inboxSize = 1 << 16

// Config configures a node's membership.
type Config struct {
	// URL is the NATS server list (comma-separated).
	URL string
	// Node is this node's unique name.
	Node string
	// Prefix starts every subject.
	Prefix string
	// Heartbeat is how often the node announces its managers on duty; NodeTimeout is how long
	// another node's announcement stays valid.
	Heartbeat, NodeTimeout time.Duration
	// ForwardTimeout bounds a forwarded Faye request (a held /meta/connect waits up to the Faye
	// timeout).
	ForwardTimeout time.Duration
}

// Injector puts a publish that came from another node into the local broker.
type Injector func(topic string, payload []byte, qos byte, retain bool) error

// Node is this process's membership of the cluster.
type Node struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	origin string // node name and boot id
	seq    atomic.Uint64
	inbox  chan *nats.Msg

	mu       sync.Mutex
	filters  map[string]int // MQTT filter → local subscriptions holding it
	subjects map[string]*interestSub
	windows  map[string]*window // origin → recently injected sequence numbers

	forwarded, injected, dropped atomic.Uint64

	duty *Duty
}

type interestSub struct {
	refs int
	sub  *nats.Subscription
}

// Connect returns a node connected to NATS. When NATS cannot be reached yet, the node starts
// anyway (serving its local clients) and keeps trying: Ready reports it.
func Connect(cfg Config, log *slog.Logger) (*Node, error) {
	boot := make([]byte, 6)
	_, _ = rand.Read(boot)
	n := &Node{cfg: cfg, log: log, origin: cfg.Node + ":" + hex.EncodeToString(boot),
		inbox: make(chan *nats.Msg, inboxSize), filters: map[string]int{}, subjects: map[string]*interestSub{},
		windows: map[string]*window{}}
	n.duty = newDuty(n)
	nc, err := nats.Connect(cfg.URL,
		nats.Name("chat-server "+cfg.Node),
		nats.NoEcho(),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { log.Info("cluster: connected to NATS"); n.duty.resync() }),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("cluster: reconnected to NATS", "url", c.ConnectedUrlRedacted())
			n.duty.resync()
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("cluster: lost NATS; serving local clients only until it returns", "err", err.Error())
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("cluster: NATS error", "subject", subj, "err", err.Error())
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s (cluster.nats_url): %w", redact(cfg.URL), err)
	}
	n.nc = nc
	return n, nil
}

// redact drops credentials from a NATS URL list for messages.
func redact(urls string) string {
	var out []string
	for _, u := range strings.Split(urls, ",") {
		if at := strings.LastIndexByte(u, '@'); at >= 0 {
			if i := strings.Index(u, "://"); i >= 0 && i < at {
				u = u[:i+3] + "***" + u[at:]
			}
		}
		out = append(out, u)
	}
	return strings.Join(out, ",")
}

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Node }

// Run injects what other nodes forward and announces the managers on duty, until ctx ends.
func (n *Node) Run(ctx context.Context, inject Injector) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.duty.run(ctx) }()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case m := <-n.inbox:
			n.receive(m, inject)
		}
	}
}

// Close says goodbye (the other nodes drop this node's managers at once) and disconnects.
func (n *Node) Close() {
	n.duty.bye()
	_ = n.nc.FlushTimeout(time.Second)
	n.nc.Close()
}

// Ready reports whether cross-node delivery works; without NATS the node still serves its own
// clients.
func (n *Node) Ready(context.Context) error {
	if !n.nc.IsConnected() {
		return fmt.Errorf("NATS unreachable (%s): cross-node delivery paused, local clients served", n.nc.Status())
	}
	return nil
}

// Stats are the forwarding counters: publishes sent to NATS, injected from it, and dropped
// (duplicates and undecodable messages).
func (n *Node) Stats() (forwarded, injected, dropped uint64) {
	return n.forwarded.Load(), n.injected.Load(), n.dropped.Load()
}

// Forward sends a local publish to the other nodes. It never blocks on the network: NATS
// buffers (also while reconnecting, up to its reconnect buffer) and a failure is logged.
func (n *Node) Forward(topic string, payload []byte, qos byte, retain bool) {
	if topic == "" || topic[0] == '$' {
		return
	}
	m := nats.NewMsg(subject.FromTopic(n.cfg.Prefix, topic))
	m.Data = payload
	m.Header.Set(HeaderOrigin, n.origin)
	m.Header.Set(HeaderSeq, strconv.FormatUint(n.seq.Add(1), 10))
	if qos > 0 {
		m.Header.Set(HeaderQoS, strconv.Itoa(int(qos)))
	}
	if retain {
		m.Header.Set(HeaderRetain, "1")
	}
	if err := n.nc.PublishMsg(m); err != nil {
		n.log.Debug("cluster: forward failed", "topic", topic, "err", err.Error())
		return
	}
	n.forwarded.Add(1)
}

func (n *Node) receive(m *nats.Msg, inject Injector) {
	origin := m.Header.Get(HeaderOrigin)
	seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
	if origin == "" || origin == n.origin || err != nil || !n.first(origin, seq) {
		n.dropped.Add(1)
		return
	}
	topic, err := subject.ToTopic(n.cfg.Prefix, m.Subject)
	if err != nil {
		n.dropped.Add(1)
		n.log.Warn("cluster: undecodable subject", "subject", m.Subject, "err", err.Error())
		return
	}
	qos := byte(0)
	if q, err := strconv.Atoi(m.Header.Get(HeaderQoS)); err == nil && q >= 0 && q <= 2 {
		qos = byte(q)
	}
	if err := inject(topic, m.Data, qos, m.Header.Get(HeaderRetain) == "1"); err != nil {
		n.log.Warn("cluster: inject failed", "topic", topic, "err", err.Error())
		return
	}
	n.injected.Add(1)
}

// first reports whether seq of origin is seen for the first time.
func (n *Node) first(origin string, seq uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	w := n.windows[origin]
	if w == nil {
		w = &window{}
		n.windows[origin] = w
	}
	w.last = time.Now()
	return w.first(seq)
}

// forgetOrigins drops the windows of origins silent for a while (nodes that stopped).
func (n *Node) forgetOrigins(before time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for o, w := range n.windows {
		if w.last.Before(before) {
			delete(n.windows, o)
		}
	}
}

// windowBits is how far back duplicates are recognised: copies of one message arrive right
// after each other, since NATS delivers one connection's traffic in order.
const windowBits = 4096

// window remembers which of the last windowBits sequence numbers were seen.
type window struct {
	top  uint64 // highest seen
	bits [windowBits / 64]uint64
	last time.Time
}

func (w *window) first(seq uint64) bool {
	switch {
	case seq == 0:
		return false
	case seq > w.top:
		if seq-w.top >= windowBits {
			w.bits = [windowBits / 64]uint64{}
		} else {
			for s := w.top + 1; s < seq; s++ {
				w.clear(s)
			}
		}
		w.top = seq
		w.set(seq)
		return true
	case w.top-seq >= windowBits:
		return false // too old to tell: a duplicate is likelier than a message this late
	case w.has(seq):
		return false
	}
	w.set(seq)
	return true
}

func (w *window) set(s uint64)      { w.bits[(s/64)%(windowBits/64)] |= 1 << (s % 64) }
func (w *window) clear(s uint64)    { w.bits[(s/64)%(windowBits/64)] &^= 1 << (s % 64) }
func (w *window) has(s uint64) bool { return w.bits[(s/64)%(windowBits/64)]&(1<<(s%64)) != 0 }

// AddFilter records a local subscription to an MQTT filter; the first one subscribes the node
// to its subjects in NATS. It reports whether a subject was added: WaitInterest then waits until
// NATS has it.
func (n *Node) AddFilter(filter string) bool {
	n.mu.Lock()
	n.filters[filter]++
	added := false
	if n.filters[filter] == 1 {
		for _, subj := range subject.ForFilter(n.cfg.Prefix, filter) {
			is := n.subjects[subj]
			if is == nil {
				sub, err := n.nc.ChanSubscribe(subj, n.inbox)
				if err != nil {
					n.log.Warn("cluster: subscribe failed", "subject", subj, "err", err.Error())
					continue
				}
				is = &interestSub{sub: sub}
				n.subjects[subj] = is
				added = true
			}
			is.refs++
		}
	}
	n.mu.Unlock()
	return added
}

// WaitInterest waits (briefly) until NATS has the node's subscriptions, so that a publish on
// another node right after a local subscription is acknowledged reaches it. (Across a NATS
// cluster, interest reaches the other NATS servers a moment later still; clients close such
// gaps with the history catch-up, as after any reconnect.)
func (n *Node) WaitInterest() {
	if n.nc.IsConnected() {
		_ = n.nc.FlushTimeout(time.Second)
	}
}

// RemoveFilter undoes one AddFilter.
func (n *Node) RemoveFilter(filter string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.filters[filter] == 0 {
		return
	}
	n.filters[filter]--
	if n.filters[filter] > 0 {
		return
	}
	delete(n.filters, filter)
	for _, subj := range subject.ForFilter(n.cfg.Prefix, filter) {
		is := n.subjects[subj]
		if is == nil {
			continue
		}
		if is.refs--; is.refs == 0 {
			_ = is.sub.Unsubscribe()
			delete(n.subjects, subj)
		}
	}
}

// Interest returns the NATS subjects the node subscribes for its local subscribers.
func (n *Node) Interest() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.subjects))
	for s := range n.subjects {
		out = append(out, s)
	}
	return out
}

// Add and Remove record a Faye client's channel of org as local interest.
func (n *Node) Add(org, name string) {
	if f, err := channel.ToTopic(org, name); err == nil && n.AddFilter(f) {
		n.WaitInterest()
	}
}

// Remove undoes Add.
func (n *Node) Remove(org, name string) {
	if f, err := channel.ToTopic(org, name); err == nil {
		n.RemoveFilter(f)
	}
}

// control builds a control subject: <prefix>.cluster.<parts…>.
func (n *Node) control(parts ...string) string {
	return n.cfg.Prefix + ".cluster." + strings.Join(parts, ".")
}

// Forwarding of Faye requests. A long-polling client's requests may reach any node; its
// session lives on the node that handshook it, whose name is in its client id. Another node
// sends the request there with NATS request/reply and relays the answer: shared session state
// would put every delivery of every Faye client on the network, while forwarding costs one
// round trip per request of the (rare) clients whose requests land elsewhere.

// ErrOwnerGone means no node answers for a client id: its node stopped.
var ErrOwnerGone = errors.New("the node that owns this client is gone")

// ForwardFaye sends a Faye request to node and returns its answer. Without NATS it fails at
// once rather than queue the request until NATS returns.
func (n *Node) ForwardFaye(ctx context.Context, node string, req []byte) ([]byte, error) {
	if !n.nc.IsConnected() {
		return nil, fmt.Errorf("forward to %s: %w", node, nats.ErrConnectionClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ForwardTimeout)
	defer cancel()
	msg, err := n.nc.RequestWithContext(ctx, n.control("faye", node), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, fmt.Errorf("forward to %s: %w", node, ErrOwnerGone)
	case err != nil:
		return nil, fmt.Errorf("forward to %s: %w", node, err)
	}
	return msg.Data, nil
}

// maxForwarded bounds the forwarded Faye requests this node serves at once (each may hold a
// connect for the Faye timeout); beyond it requests get no answer and are handled by the
// sender as for an unknown client.
const maxForwarded = 10000

// ServeFaye answers the Faye requests other nodes forward for this node's clients with serve,
// which may hold them (a long-poll), so each runs in its own goroutine.
func (n *Node) ServeFaye(ctx context.Context, serve func(ctx context.Context, req []byte) []byte) error {
	slots := make(chan struct{}, maxForwarded)
	_, err := n.nc.Subscribe(n.control("faye", n.cfg.Node), func(m *nats.Msg) {
		select {
		case slots <- struct{}{}:
		default:
			n.log.Warn("cluster: too many forwarded Faye requests; refusing one")
			return
		}
		go func() {
			defer func() { <-slots }()
			if err := m.Respond(serve(ctx, m.Data)); err != nil {
				n.log.Debug("cluster: Faye answer lost", "err", err.Error())
			}
		}()
	})
	if err != nil {
		return fmt.Errorf("serve forwarded Faye requests: %w", err)
	}
	return nil
}
