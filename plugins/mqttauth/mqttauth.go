// Package mqttauth is the broker hook that authenticates MQTT clients with the same JWTs as
// REST and Faye (the token is the CONNECT password; the username is free) and applies the
// chat ACL to every subscribe, publish and delivery.
//
// The identity is written into the client's Username when it connects, replacing whatever the
// client sent. The broker's storage hook keeps it with a persistent session, so after a restart
// the hook still knows who owns a stored session: its client id cannot be taken by anyone else,
// and messages for it while it is offline pass the same ACL as when it is online.
package mqttauth

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/plugins/mqttreason"
)

// Verifier turns a token into an identity and the time it stops being valid.
type Verifier interface {
	VerifyExpiry(token string) (auth.Identity, time.Time, error)
}

// ACL decides subscribes and publishes on channel names of the identity's organisation.
type ACL interface {
	CanSubscribe(ctx context.Context, id auth.Identity, name string) error
	CanPublish(ctx context.Context, id auth.Identity, name string) error
}

// Disconnector ends a client's connection with a reason (the broker's DisconnectClient).
type Disconnector func(cl *mqtt.Client, code packets.Code) error

// Connacker answers a CONNECT (the broker's SendConnack): a hook that refuses in OnConnect
// sends its own CONNACK, with the reason code that fits.
type Connacker func(cl *mqtt.Client, code packets.Code, present bool, props *packets.Properties) error

// Hook is the authentication and ACL hook.
type Hook struct {
	mqtt.HookBase
	verifier   Verifier
	acl        ACL
	clients    *mqtt.Clients
	disconnect Disconnector
	connack    Connacker
	log        *slog.Logger

	refusals logThrottle

	mu     sync.Mutex
	expiry map[*mqtt.Client]*time.Timer // ends each connection when its token expires
}

// refusalLogsPerSecond bounds the "mqtt connect refused" and "mqtt acl check failed" lines:
// each is about 250 bytes, anyone can send failing CONNECTs as fast as the network allows, and
// an outage fails the ACL check of every delivery.
const refusalLogsPerSecond = 10

// logThrottle lets through at most refusalLogsPerSecond lines a second, over all clients, and
// counts the ones it holds back so that the next line says how many.
type logThrottle struct {
	mu         sync.Mutex
	second     int64
	n          int
	suppressed int
}

// allow reports whether a line may be written at now, and how many were suppressed since the
// last one written.
func (t *logThrottle) allow(now time.Time) (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := now.Unix(); s != t.second {
		t.second, t.n = s, 0
	}
	if t.n >= refusalLogsPerSecond {
		t.suppressed++
		return false, 0
	}
	t.n++
	held := t.suppressed
	t.suppressed = 0
	return true, held
}

// refused logs a refused CONNECT or a failed ACL check, throttled.
func (h *Hook) refused(level slog.Level, msg string, args ...any) {
	ok, held := h.refusals.allow(time.Now())
	if !ok {
		return
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	h.log.Log(context.Background(), level, msg, args...)
}

// New returns the hook. clients is the broker's client list, to keep client ids owned by the
// identity that holds them; disconnect ends connections whose token expired; connack refuses a
// CONNECT whose will the identity may not publish.
func New(v Verifier, acl ACL, clients *mqtt.Clients, disconnect Disconnector, connack Connacker, log *slog.Logger) *Hook {
	return &Hook{verifier: v, acl: acl, clients: clients, disconnect: disconnect, connack: connack, log: log, expiry: map[*mqtt.Client]*time.Timer{}}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "chat-auth" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect}, []byte{b})
}

// OnConnect refuses a CONNECT whose will (last-will message) its identity may not publish.
// mochi publishes a will, retained if asked, when the socket drops, without the publish ACL:
// unchecked, a client of one organisation could post into (and retain on) another's
// conversations. So a will is checked here exactly like a publish by that identity, and a
// conversation topic never takes one (a will there would be a chat message nobody wrote).
// The check runs before OnConnectAuthenticate, which sets the identity, so it verifies the
// token itself; only CONNECTs with a will pay for that, and a bad token is left to
// OnConnectAuthenticate to refuse.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if !pk.Connect.WillFlag {
		return nil
	}
	id, _, err := h.verifier.VerifyExpiry(string(pk.Connect.Password))
	if err != nil {
		return nil
	}
	topic := pk.Connect.WillTopic
	_, name, terr := channel.FromTopic(topic)
	if terr == nil && isConversation(name) {
		err = chat.Forbidden("a conversation takes no will")
	} else {
		err = h.decide(id, topic, true)
	}
	if err == nil {
		return nil
	}
	// SendConnack maps the code to 3.1.1's return codes: 0x87 to 5, not authorised, and 0x88
	// (the store could not decide) to 3, server unavailable, so the client retries.
	code := mqttreason.Code(err, packets.Connack)
	level := slog.LevelInfo
	if chat.KindOf(err).ServerFault() {
		level = slog.LevelWarn
	}
	h.refused(level, "mqtt connect refused: will not allowed", "client", cl.ID, "identity", id.String(), "topic", topic, "retain", pk.Connect.WillRetain, "remote", cl.Net.Remote, "reason", err.Error())
	_ = h.connack(cl, code, false, nil)
	return code
}

// isConversation reports whether a channel name is under /conversations (a prefix test, not
// Classify: a malformed id there must be refused too).
func isConversation(name string) bool {
	return name == "/conversations" || strings.HasPrefix(name, "/conversations/")
}

// OnConnectAuthenticate accepts a client whose password is a valid token. A client id the
// broker still knows (connected, or a kept session) may only be taken by its owner: otherwise a
// visitor could take over a manager's session and its subscriptions.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, expires, err := h.verifier.VerifyExpiry(string(pk.Connect.Password))
	if err != nil {
		h.refused(slog.LevelInfo, "mqtt connect refused", "client", cl.ID, "remote", cl.Net.Remote, "reason", err.Error())
		return false
	}
	if existing, known := h.clients.Get(cl.ID); known {
		if owner, ok := auth.ParseKey(string(existing.Properties.Username)); !ok || owner != id {
			h.refused(slog.LevelWarn, "mqtt connect refused: client id held by another identity", "client", cl.ID, "identity", id.String(), "remote", cl.Net.Remote)
			return false
		}
	}
	cl.Properties.Username = []byte(id.Key())
	h.mu.Lock()
	h.expiry[cl] = time.AfterFunc(time.Until(expires), func() {
		h.log.Info("mqtt token expired: disconnecting", "client", cl.ID, "identity", id.String())
		_ = h.disconnect(cl, packets.ErrMaxConnectTime)
	})
	h.mu.Unlock()
	return true
}

// Identity returns the identity of a client, connected or kept in a persistent session.
func (h *Hook) Identity(cl *mqtt.Client) (auth.Identity, bool) {
	if cl.Net.Inline {
		return auth.Identity{}, false
	}
	return auth.ParseKey(string(cl.Properties.Username))
}

// OnACLCheck applies the chat ACL. It runs for subscribe filters, for publishes, and for each
// delivery with the concrete topic (also to sessions that are offline). Topics outside
// `orgs/<own org>/` ($SYS included) and topics with no Faye equivalent are refused to everyone.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	id, ok := h.Identity(cl)
	if !ok {
		return false
	}
	// The broker's ACL hook answers yes or no; mochi picks the reason code itself. An ACL that
	// could not decide (the store is down) is still logged as what it is, throttled: this runs
	// for every delivery.
	if err := h.decide(id, topic, write); err != nil {
		if chat.KindOf(err).ServerFault() {
			h.refused(slog.LevelWarn, "mqtt acl check failed", "client", cl.ID, "identity", id.String(), "topic", topic, "write", write, "err", err.Error())
		} else {
			h.log.Debug("mqtt acl refused", "client", cl.ID, "identity", id.String(), "topic", topic, "write", write, "reason", err.Error())
		}
		return false
	}
	return true
}

// decide decides a subscribe (write false) or publish of identity id on topic: nil, or the
// chat error that refuses it.
func (h *Hook) decide(id auth.Identity, topic string, write bool) error {
	org, name, err := channel.FromTopic(topic)
	if err != nil || org != id.Org {
		return chat.Forbidden("the topic is outside the organisation's channels")
	}
	// No timer of its own: this runs for every delivery, and the store already bounds each of
	// its calls (mongo.timeout); most decisions come from the conversation cache anyway.
	ctx := context.Background()
	if write {
		return h.acl.CanPublish(ctx, id, name)
	}
	return h.acl.CanSubscribe(ctx, id, name)
}

// OnDisconnect stops the connection's expiry timer.
func (h *Hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.expiry[cl]; t != nil {
		t.Stop()
		delete(h.expiry, cl)
	}
}
