// Package faye is the Faye door's engine: a Bayeux server compatible with the official Faye
// 1.4 clients (sessions, subscriptions, the channel index, delivery, cluster forwarding). Every
// Bayeux subscription and publish goes through the embedded broker, so Faye, MQTT and REST
// clients see each other's traffic. The engine knows no transport: package faye/transport
// carries it over websocket, long-polling, cross-origin long-polling, callback-polling (JSONP)
// and EventSource through the seam in transports.go. It must not import faye/transport,
// faye/sockloop nor any HTTP server package.
package faye

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/faye/bayeux"
	"github.com/convead/chat-server/origin"
	"github.com/convead/chat-server/ratelimit"
)

// Config configures the Bayeux engine.
type Config struct {
	// Timeout is advice.timeout: how long a /meta/connect is held when nothing is queued.
	Timeout time.Duration
	// IdleTimeout forgets a session that made no request and holds no connection this long.
	IdleTimeout time.Duration
	// Ping is the interval of websocket pings and EventSource comments.
	Ping time.Duration
	// MaxBatch bounds the messages of one request; MaxChannels the subscriptions of a session;
	// MaxQueue the deliveries waiting for a session (beyond it they are dropped and counted).
	MaxBatch, MaxChannels, MaxQueue int
	// AnonymousOrg lets clients without a token act as visitors of this organisation.
	AnonymousOrg string
	// HandshakesPerIP bounds handshakes per client IP address (nil: no limit).
	HandshakesPerIP *ratelimit.Limiter
	// Origins decides, at handshake, whether a browser origin may act for an organisation.
	Origins interface {
		AllowedFor(org, origin, host string) bool
	}
	// Cluster mode (see cluster.go): this node's name, the way to other nodes' clients, and
	// who hears of subscribed channels. All empty on a single node.
	Node     string
	Router   Router
	Interest Interest
}

// Peer is what the transport knows of the other end.
type Peer struct {
	IP     string
	Origin string // the Origin header, when a browser sent one
	Host   string // the Host the request was sent to
}

// ACL decides subscribes and publishes (the chat domain does).
type ACL interface {
	CanSubscribe(ctx context.Context, id auth.Identity, name string) error
	CanPublish(ctx context.Context, id auth.Identity, name string) error
	// MayReceive reports, without blocking, whether a manager still may receive the
	// deliveries of a conversation it subscribed to: one transferred away from it may not.
	MayReceive(id auth.Identity, conversationID string) bool
}

// Verifier turns a token into an identity.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
}

// Duty hears what each session holds (package duty decides who that puts on duty).
type Duty interface {
	Subscribed(id auth.Identity, name, holder string)
	Unsubscribed(id auth.Identity, name, holder string)
	Gone(holder string)
}

// Broker is the routing core: Faye publishes go in, and every publish comes out to Handler.
type Broker interface {
	Publish(org, name string, payload []byte) error
}

// Engine is the Bayeux server: sessions, subscriptions and message processing, independent of
// the transport that carries them.
type Engine struct {
	cfg      Config
	acl      ACL
	verifier Verifier
	duty     Duty
	broker   Broker
	log      *slog.Logger
	now      func() time.Time

	mu       sync.RWMutex
	sessions map[string]*session
	idx      *index

	closing atomic.Bool // the server is shutting down: sessions end, clients should re-handshake

	counters counters

	stopMu sync.Mutex
	stops  []func() // transports to stop after the sessions ended
}

// OnStop registers fn to run when Run ends, after every session ended: a transport's own
// shutdown (its connections were answered or closed by the sessions' end).
func (e *Engine) OnStop(fn func()) {
	e.stopMu.Lock()
	defer e.stopMu.Unlock()
	e.stops = append(e.stops, fn)
}

// New returns an engine. Feed it the broker's publishes through Deliver, and run Run.
func New(cfg Config, acl ACL, v Verifier, duty Duty, b Broker, log *slog.Logger) *Engine {
	return &Engine{cfg: cfg, acl: acl, verifier: v, duty: duty, broker: b, log: log, now: time.Now,
		sessions: map[string]*session{}, idx: newIndex()}
}

// Run forgets idle sessions until ctx ends, then ends every session, which releases held
// connects and streams.
func (e *Engine) Run(ctx context.Context) {
	tick := time.NewTicker(max(e.cfg.IdleTimeout/4, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			e.closing.Store(true)
			e.closeAll()
			e.stopMu.Lock()
			stops := e.stops
			e.stopMu.Unlock()
			for _, fn := range stops {
				fn()
			}
			return
		case <-tick.C:
			e.collect()
		}
	}
}

func (e *Engine) collect() {
	cutoff := e.now().Add(-e.cfg.IdleTimeout)
	e.mu.RLock()
	var idle []*session
	for _, s := range e.sessions {
		if s.idle(cutoff) {
			idle = append(idle, s)
		}
	}
	e.mu.RUnlock()
	for _, s := range idle {
		e.destroy(s)
	}
}

func (e *Engine) closeAll() {
	for _, s := range e.snapshot() {
		e.destroy(s)
	}
}

// snapshot lists the live sessions, to visit without holding the engine's lock.
func (e *Engine) snapshot() []*session {
	e.mu.RLock()
	defer e.mu.RUnlock()
	all := make([]*session, 0, len(e.sessions))
	for _, s := range e.sessions {
		all = append(all, s)
	}
	return all
}

// Sessions returns the number of live sessions.
func (e *Engine) Sessions() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return len(e.sessions)
}

// Deliver hands a broker publish to the matching sessions. It runs in the publisher's
// goroutine, so it only encodes once and queues; the sockets' writers write, however few the
// subscribers: handing off costs a wake-up, while writing here cost one system call per
// delivery, where a writer coalesces what piled up meanwhile (+25% deliveries per CPU-second
// in the pairs benchmark). It never waits for a client.
func (e *Engine) Deliver(topic string, payload []byte) {
	org, name, err := channel.FromTopic(topic)
	if err != nil || channel.IsPattern(name) {
		return
	}
	var msg []byte
	var encodeErr error
	conv := ""
	if ch := channel.Classify(name); ch.Kind == channel.Conversation || ch.Kind == channel.ConversationSub {
		conv = ch.ID
	}
	e.idx.match(org, name, func(s *session) {
		// A manager's subscription outlives a transfer of the conversation; its deliveries do not.
		if conv != "" && s.hasIdentity && s.identity.Role == auth.Manager && !e.acl.MayReceive(s.identity, conv) {
			return
		}
		if msg == nil && encodeErr == nil { // encoded once, for the first subscriber
			if msg, encodeErr = encodePayload(name, payload); encodeErr != nil {
				e.log.Warn("faye: undeliverable payload", "topic", topic, "err", encodeErr.Error())
			}
		}
		if encodeErr != nil {
			return
		}
		c, dropped := s.deliver(msg, e.cfg.MaxQueue)
		if dropped {
			e.counters.dropped.Add(1)
		} else {
			e.counters.delivered.Add(1)
		}
		if c != nil {
			c.signal()
		}
		if dropped && s.markOverflow() {
			e.counters.overflowed.Add(1)
			// A client that cannot keep up is ended rather than left with a silent gap: its
			// next connect gets "401 Unknown client", it handshakes again, and catches up from
			// the history API (see the README's reconnect recipe).
			e.log.Warn("faye: client queue full, ending the session", "client", s.id, "queue", e.cfg.MaxQueue, "topic", topic)
			go e.destroy(s) // not here: this runs inside the broker's publish
		}
	})
}

// encodePayload turns an MQTT payload into a Bayeux delivery: JSON as is, other UTF-8 text as
// a JSON string.
// The payload is read once when it is JSON, the common case.
func encodePayload(name string, payload []byte) ([]byte, error) {
	out, err := bayeux.EncodeDelivery(name, payload)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, bayeux.ErrNotText):
		// encoding/json accepts invalid UTF-8 in strings; no subscriber may receive it.
		return nil, errors.New("payload is JSON with invalid UTF-8")
	case !utf8.Valid(payload):
		return nil, errors.New("payload is neither JSON nor UTF-8 text")
	}
	quoted, err := json.Marshal(string(payload))
	if err != nil {
		return nil, err
	}
	return bayeux.EncodeDelivery(name, quoted)
}

const idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// newClientID returns 31 random characters of [0-9a-z], like Faye's ids; in a cluster, after
// the node's name and nodeSep.
func newClientID(node string) string {
	var b [31]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	if node != "" {
		return node + nodeSep + string(b[:])
	}
	return string(b[:])
}

func (e *Engine) session(id string) *session {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.sessions[id]
}

// holder names a session in the duty registry.
func holder(s *session) string { return "faye:" + s.id }

func (e *Engine) destroy(s *session) {
	e.mu.Lock()
	if e.sessions[s.id] == s {
		delete(e.sessions, s.id)
	}
	e.mu.Unlock()
	if !s.close() {
		return
	}
	s.mu.Lock()
	org := s.org(e.cfg.AnonymousOrg)
	subs := slices.Clone(s.subs)
	s.mu.Unlock()
	for _, name := range subs {
		e.idx.remove(org, name, s)
		e.lostInterest(org, name)
	}
	e.duty.Gone(holder(s))
}

func (e *Engine) lostInterest(org, name string) {
	if e.cfg.Interest != nil {
		e.cfg.Interest.Remove(org, name)
	}
}

// org is the organisation a session's channels live in.
func (s *session) org(anonymousOrg string) string {
	if s.hasIdentity {
		return s.identity.Org
	}
	return anonymousOrg
}

// Connect is a /meta/connect waiting for its answer: a websocket holds Reply up to Wait and
// streams the session's messages (Stream); polling transports are held by Answer.
type Connect struct {
	Reply   bayeux.Reply
	session *session
	// Wait is how long the reply may be held: 0 when the client asked for an immediate
	// answer or something is already queued.
	Wait time.Duration
}

// Process handles one batch from a transport. It returns the replies to send now and, when the
// batch holds a valid /meta/connect, the connect to answer once held. Replies to connects come
// last, as Faye sends them. A streaming transport (websocket) calls it for each batch in the
// order the client sent them, sends the replies, and answers a returned connect itself
// (Stream); polling transports use Answer, which calls it. The replies are appended to
// replies[:0], a buffer the caller may reuse (nil: a new one).
func (e *Engine) Process(ctx context.Context, replies []bayeux.Reply, msgs []bayeux.Message, transport string, peer Peer) ([]bayeux.Reply, *Connect) {
	replies = replies[:0]
	var connect *Connect
	var connectReplies []bayeux.Reply
	for _, m := range msgs {
		if m.InvalidText {
			replies = append(replies, refuseText(m))
			continue
		}
		switch m.Channel {
		case bayeux.Handshake:
			replies = append(replies, e.handshake(m, peer))
		case bayeux.Connect:
			r, c := e.connect(m, transport)
			if c != nil {
				if connect != nil { // a second connect in one batch: answer the first now
					connectReplies = append(connectReplies, connect.Reply)
				}
				connect = c
				continue
			}
			connectReplies = append(connectReplies, r)
		case bayeux.Subscribe:
			replies = append(replies, e.subscribe(ctx, m))
		case bayeux.Unsubscribe:
			replies = append(replies, e.unsubscribe(m))
		case bayeux.Disconnect:
			replies = append(replies, e.disconnect(m))
		default:
			replies = append(replies, e.publish(ctx, m))
		}
	}
	return append(replies, connectReplies...), connect
}

// refuseText answers a message holding invalid UTF-8; only what is valid text is echoed.
func refuseText(m bayeux.Message) bayeux.Reply {
	r := bayeux.ReplyTo(m) // Channel and ClientID decode to valid strings
	if !bayeux.ValidJSONText(r.ID) {
		r.ID = nil
	}
	return r.Fail(bayeux.InvalidText())
}

func (e *Engine) advice() *bayeux.Advice {
	interval, timeout := int64(0), e.cfg.Timeout.Milliseconds()
	return &bayeux.Advice{Reconnect: "retry", Interval: &interval, Timeout: &timeout}
}

func (e *Engine) handshake(m bayeux.Message, peer Peer) bayeux.Reply {
	r := bayeux.ReplyTo(m)
	r.ClientID = ""
	r.Version = bayeux.Version
	r.SupportedConnectionTypes = bayeux.ConnectionTypes
	fail := func(err bayeux.Error, reconnect string) bayeux.Reply {
		r = r.Fail(err)
		r.Advice = &bayeux.Advice{Reconnect: reconnect}
		return r
	}
	switch {
	case m.Version == "":
		return fail(bayeux.ParameterMissing("version"), "handshake")
	case m.ConnectionTypes == nil:
		return fail(bayeux.ParameterMissing("supportedConnectionTypes"), "handshake")
	}
	supported := false
	for _, t := range m.ConnectionTypes {
		supported = supported || (!m.ConnectionTypesNotList && bayeux.SupportsType(t))
	}
	if !supported {
		return fail(bayeux.ConntypeMismatch(joinParams(m.ConnectionTypes)), "handshake")
	}
	if !e.cfg.HandshakesPerIP.Allow(peer.IP, e.now()) {
		r = r.Fail(bayeux.Error{Code: 429, Message: "Too many handshakes from this address"})
		interval := time.Minute.Milliseconds() / 10
		r.Advice = &bayeux.Advice{Reconnect: "handshake", Interval: &interval}
		return r
	}
	var id auth.Identity
	hasIdentity := false
	if m.Token != "" {
		var err error
		if id, err = e.verifier.Verify(m.Token); err != nil {
			// "none": retrying with the same token cannot succeed.
			return fail(bayeux.AuthenticationFailed(), "none")
		}
		hasIdentity = true
	}
	org := e.cfg.AnonymousOrg
	if hasIdentity {
		org = id.Org
	}
	if org != "" && origin.CrossOrigin(peer.Origin, peer.Host) && !e.cfg.Origins.AllowedFor(org, peer.Origin, peer.Host) {
		return fail(bayeux.Error{Code: 403, Message: "Forbidden origin"}, "none")
	}
	s := newSession(newClientID(e.cfg.Node), e.now())
	s.identity, s.hasIdentity = id, hasIdentity
	e.mu.Lock()
	e.sessions[s.id] = s
	e.mu.Unlock()
	r.Successful = true
	r.ClientID = s.id
	r.Advice = e.advice()
	return r
}

func joinParams(p []string) string {
	out := ""
	for i, s := range p {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func (e *Engine) connect(m bayeux.Message, transport string) (bayeux.Reply, *Connect) {
	r := bayeux.ReplyTo(m)
	handshake := &bayeux.Advice{Reconnect: "handshake"}
	switch {
	case m.ConnectionType == "":
		r = r.Fail(bayeux.ParameterMissing("connectionType"))
		r.ClientID, r.Advice = "", handshake
		return r, nil
	case !bayeux.SupportsType(m.ConnectionType):
		r = r.Fail(bayeux.ConntypeMismatch(m.ConnectionType))
		r.ClientID, r.Advice = "", handshake
		return r, nil
	}
	s := e.owned(m.ClientID, m.Token)
	if s == nil {
		r = r.Fail(bayeux.ClientUnknown(m.ClientID))
		r.ClientID, r.Advice = "", handshake
		return r, nil
	}
	s.touch(e.now())
	s.setTransport(m.ConnectionType)
	e.rejoinDuty(s)
	r.Successful = true
	r.Advice = e.advice()
	wait := e.cfg.Timeout
	if m.AdviceTimeout >= 0 {
		wait = min(wait, time.Duration(m.AdviceTimeout)*time.Millisecond)
	}
	if m.ConnectionType == bayeux.EventSource || transport == bayeux.EventSource {
		// Deliveries go down the stream; the connect only keeps the session alive, so it is
		// answered at once and asked again after interval.
		interval, zero := e.cfg.Timeout.Milliseconds(), int64(0)
		r.Advice = &bayeux.Advice{Reconnect: "retry", Interval: &interval, Timeout: &zero}
		return r, nil
	}
	return r, &Connect{Reply: r, session: s, Wait: wait}
}

// rejoinDuty reports the subscriptions of a session again when it reconnects: a streaming
// connection that ended reported the session gone (which took a manager off duty), yet the
// session and its subscriptions live on.
func (e *Engine) rejoinDuty(s *session) {
	var few [8]string // a session's channels, copied out of its lock without allocating for most
	s.mu.Lock()
	id, names := s.identity, append(few[:0], s.subs...)
	s.mu.Unlock()
	for _, name := range names {
		e.duty.Subscribed(id, name, holder(s))
	}
}

// owned returns the session named id when token shows the identity that opened it: the same
// identity for a session opened with a token, no token for one opened without. Anything else
// reads exactly as an unknown id (nil), so a client id alone never acts on a session and a
// probe cannot tell whether the id exists.
func (e *Engine) owned(id, token string) *session {
	s := e.session(id)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	has, want := s.hasIdentity, s.identity
	s.mu.Unlock()
	switch {
	case token == "" && !has:
		return s
	case token == "" || !has:
		return nil
	}
	if got, err := e.verifier.Verify(token); err != nil || got != want {
		return nil
	}
	return s
}

// identity says who sent m on session s, which owned found for m (nil for a stale or foreign
// client id): a session keeps the identity it was opened with; without a session the
// message's own token decides; the anonymous switch makes a visitor.
func (e *Engine) identity(s *session, m bayeux.Message) (auth.Identity, *bayeux.Error) {
	if s != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.hasIdentity {
			return s.identity, nil
		}
		if e.cfg.AnonymousOrg != "" {
			return auth.Identity{Subject: s.anonVisitor, Role: auth.Visitor, Org: e.cfg.AnonymousOrg}, nil
		}
	} else if m.Token != "" {
		id, err := e.verifier.Verify(m.Token)
		if err != nil {
			failed := bayeux.AuthenticationFailed()
			return id, &failed
		}
		return id, nil
	} else if e.cfg.AnonymousOrg != "" {
		return auth.Identity{Role: auth.Visitor, Org: e.cfg.AnonymousOrg}, nil
	}
	required := bayeux.AuthenticationRequired()
	return auth.Identity{}, &required
}

// subscription does what /meta/subscribe and /meta/unsubscribe share: the reply (echoing the
// subscription field as sent), the session, and the channel names. ok false means r is the
// error to send.
func (e *Engine) subscription(m bayeux.Message) (r bayeux.Reply, s *session, names []string, ok bool) {
	r = bayeux.ReplyTo(m)
	r.Subscription = m.Subscription
	if len(r.Subscription) == 0 {
		r.Subscription = json.RawMessage("[]")
	}
	if m.ClientID == "" {
		r.ClientID = ""
		return r.Fail(bayeux.ParameterMissing("clientId")), nil, nil, false
	}
	if s = e.owned(m.ClientID, m.Token); s == nil {
		r.ClientID = ""
		return r.Fail(bayeux.ClientUnknown(m.ClientID)), nil, nil, false
	}
	s.touch(e.now())
	if names, ok = m.Subscriptions(); !ok {
		return r.Fail(bayeux.ParameterMissing("subscription")), nil, nil, false
	}
	return r, s, names, true
}

func (e *Engine) subscribe(ctx context.Context, m bayeux.Message) bayeux.Reply {
	r, s, names, ok := e.subscription(m)
	if !ok {
		return r
	}
	id, authErr := e.identity(s, m)
	for _, name := range names {
		switch {
		case !channel.Valid(name):
			return r.Fail(bayeux.ChannelInvalid(name))
		case channel.IsMeta(name):
			return r.Fail(bayeux.ChannelForbidden(name))
		case authErr != nil:
			return r.Fail(*authErr)
		}
		if id.Role == auth.Visitor && id.Subject == "" {
			// An anonymous widget becomes the visitor whose channel it subscribes to first.
			if ch := channel.Classify(name); ch.Kind == channel.Service || ch.Kind == channel.Notifications {
				id.Subject = ch.ID
			}
		}
		if err := e.acl.CanSubscribe(ctx, id, name); err != nil {
			return e.refuse(ctx, r, "subscribe", name, err)
		}
	}
	s.mu.Lock()
	if !s.hasIdentity && id.Subject != "" && s.anonVisitor == "" {
		s.anonVisitor = id.Subject
	}
	var added []string
	for _, name := range names {
		// A channel named twice is one subscription (and one interest); names are few
		// (MaxBatch bounds the message).
		if !s.subs.has(name) && !slices.Contains(added, name) {
			added = append(added, name)
		}
	}
	if len(s.subs)+len(added) > e.cfg.MaxChannels {
		s.mu.Unlock()
		return r.Fail(bayeux.Error{Code: 429, Params: names[:1], Message: "Too many subscriptions"})
	}
	for _, name := range added {
		s.subs.add(name)
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return r.Fail(bayeux.ClientUnknown(m.ClientID))
	}
	for _, name := range added {
		e.idx.add(id.Org, name, s)
		if e.cfg.Interest != nil {
			e.cfg.Interest.Add(id.Org, name)
		}
		e.duty.Subscribed(id, name, holder(s))
	}
	r.Successful = true
	return r
}

func (e *Engine) unsubscribe(m bayeux.Message) bayeux.Reply {
	r, s, names, ok := e.subscription(m)
	if !ok {
		return r
	}
	for _, name := range names {
		if !channel.Valid(name) {
			return r.Fail(bayeux.ChannelInvalid(name))
		}
	}
	s.mu.Lock()
	org, id := s.org(e.cfg.AnonymousOrg), s.identity
	var removed []string
	for _, name := range names {
		if s.subs.remove(name) {
			removed = append(removed, name)
		}
	}
	s.mu.Unlock()
	for _, name := range removed {
		e.idx.remove(org, name, s)
		e.lostInterest(org, name)
		e.duty.Unsubscribed(id, name, holder(s))
	}
	r.Successful = true
	return r
}

func (e *Engine) disconnect(m bayeux.Message) bayeux.Reply {
	r := bayeux.ReplyTo(m)
	s := e.owned(m.ClientID, m.Token)
	if m.ClientID == "" || s == nil {
		r.ClientID = ""
		if m.ClientID == "" {
			return r.Fail(bayeux.ParameterMissing("clientId"))
		}
		return r.Fail(bayeux.ClientUnknown(m.ClientID))
	}
	e.destroy(s)
	r.Successful = true
	return r
}

func (e *Engine) publish(ctx context.Context, m bayeux.Message) bayeux.Reply {
	r := bayeux.ReplyTo(m)
	switch { // in Faye's order: see the wire captures
	case m.Channel == "" && !m.HasData:
		return r.Fail(bayeux.ParameterMissing("data"))
	case channel.IsMeta(m.Channel):
		return r.Fail(bayeux.ChannelForbidden(m.Channel))
	case !concrete(m.Channel):
		return r.Fail(bayeux.ChannelInvalid(m.Channel))
	case !m.HasData:
		return r.Fail(bayeux.ParameterMissing("data"))
	}
	// A stale or unknown client id is accepted: Faye's client retries publishes with its old
	// id after a server restart, and refusing them would lose those messages. Another
	// identity's client id reads as unknown: the publish is judged by its own token alone.
	s := e.owned(m.ClientID, m.Token)
	if s != nil {
		s.touch(e.now())
	}
	id, authErr := e.identity(s, m)
	if authErr != nil {
		return r.Fail(bayeux.ChannelForbidden(m.Channel))
	}
	if err := e.acl.CanPublish(ctx, id, m.Channel); err != nil {
		return e.refuse(ctx, r, "publish", m.Channel, err)
	}
	if ch := channel.Classify(m.Channel); ch.Kind == channel.ConversationSub && ch.Sub == channel.SubPost {
		// The post command is MQTT's (it needs an acknowledgement Bayeux publishes do not
		// carry); a widget posts through the REST API.
		return r.Fail(bayeux.ChannelForbidden(m.Channel))
	}
	// Only data travels: the publisher's ext (its token) and client id never reach anyone.
	if err := e.broker.Publish(id.Org, m.Channel, m.Data); err != nil {
		e.log.Error("faye: publish failed", "channel", m.Channel, "err", err.Error())
		return r.Fail(bayeux.PublishFailed(m.Channel))
	}
	r.Successful = true
	return r
}

// hold waits until c may be answered: something is queued for its session, its wait ran
// out, another connect replaced it, the session ended, or ctx ended. It returns the
// deliveries to send after the connect reply.
func (e *Engine) hold(ctx context.Context, c *Connect) [][]byte {
	cons := c.session.attach(false, nil)
	if cons == nil {
		return nil
	}
	defer c.session.detach(cons)
	if c.Wait > 0 && !c.session.pending() {
		timer := time.NewTimer(c.Wait)
		defer timer.Stop()
		select {
		case <-cons.wake:
		case <-cons.done:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	c.session.touch(e.now())
	if e.closing.Load() {
		c.Reply.Advice = e.shutdownAdvice()
	}
	return c.session.take()
}

// shutdownAdvice tells a client whose session ends with the server to reconnect after a
// second: it then meets the next node, or this one restarted, gets "401 Unknown client" and
// handshakes again. ("handshake" advice would skip the 401, but the official client 1.4.3
// then never reports transport:up again and stalls — measured by the Node restart test.)
func (e *Engine) shutdownAdvice() *bayeux.Advice {
	interval, timeout := int64(1000), e.cfg.Timeout.Milliseconds()
	return &bayeux.Advice{Reconnect: "retry", Interval: &interval, Timeout: &timeout}
}

// stream attaches a websocket (sk) or EventSource (sk nil) to a session: deliveries are pushed
// as they come. The caller drains after each wake, and calls Release when the stream ends.
func (e *Engine) stream(s *session, sk Sink) *Consumer { return s.attach(true, sk) }
