// Package commands is the broker hook that lets MQTT apps post chat messages by publishing to a
// command topic instead of calling the REST API:
//
//	publish  orgs/O/conversations/C/post   {"content":"…","client_message_id":"…"}
//	answer   orgs/O/replies/<role>/<id>    {"ok":true,"created":true,"message":{…},"client_message_id":"…"}
//
// The message is stored through the same domain code as REST (rules, idempotency, the
// `message` event on the conversation) before the broker acknowledges the publish, so a PUBACK
// means stored. The command itself is never forwarded to subscribers.
package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/plugins/mqttreason"
	"github.com/convead/chat-server/store"
)

// Poster stores a chat message (the chat domain does).
type Poster interface {
	PostMessage(ctx context.Context, id auth.Identity, convID, content, clientMessageID string) (store.Message, bool, error)
}

// Publisher sends the answer (the broker does).
type Publisher interface {
	Publish(org, name string, payload []byte) error
}

// Identities tells who a client is.
type Identities interface {
	Identity(cl *mqtt.Client) (auth.Identity, bool)
}

// Timeout bounds the handling of one command.
const Timeout = 10 * time.Second

// Hook is the command hook.
type Hook struct {
	mqtt.HookBase
	ids    Identities
	poster Poster
	pub    Publisher
	log    *slog.Logger
}

// New returns the hook.
func New(ids Identities, poster Poster, pub Publisher, log *slog.Logger) *Hook {
	return &Hook{ids: ids, poster: poster, pub: pub, log: log}
}

// ID implements mqtt.Hook.
func (h *Hook) ID() string { return "chat-commands" }

// Provides implements mqtt.Hook.
func (h *Hook) Provides(b byte) bool { return b == mqtt.OnPublish }

type command struct {
	Content         json.RawMessage `json:"content"`
	ClientMessageID string          `json:"client_message_id"`
}

type answer struct {
	OK              bool           `json:"ok"`
	Created         bool           `json:"created,omitempty"`
	Message         *store.Message `json:"message,omitempty"`
	Error           *answerError   `json:"error,omitempty"`
	ClientMessageID string         `json:"client_message_id,omitempty"`
}

type answerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// postTopic returns the organisation and conversation of a conversation's post topic; ok
// false for every other topic, which the hook lets through.
func postTopic(topic string) (org string, ch channel.Channel, ok bool) {
	org, name, err := channel.FromTopic(topic)
	if err != nil {
		return "", channel.Channel{}, false
	}
	ch = channel.Classify(name)
	return org, ch, ch.Kind == channel.ConversationSub && ch.Sub == channel.SubPost
}

// PassesServerPublish implements broker.PublishPasser: OnPublish lets every publish through
// but those to a post topic.
func (h *Hook) PassesServerPublish(topic string) bool {
	_, _, post := postTopic(topic)
	return !post
}

// OnPublish handles publishes to a conversation's post topic; every other publish passes.
// The broker's ACL already checked that the client may publish there.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	org, ch, post := postTopic(pk.TopicName)
	if !post {
		return pk, nil
	}
	id, ok := h.ids.Identity(cl)
	if !ok || id.Org != org {
		return pk, packets.ErrRejectPacket // server-side publishes never post
	}
	var cmd command
	var a answer
	dec := json.NewDecoder(bytes.NewReader(pk.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cmd); err != nil {
		a.Error = &answerError{Code: "invalid_json", Message: `the payload must be {"content":…,"client_message_id":…}`}
		h.reply(id, a)
		return pk, packets.CodeSuccessIgnore
	}
	a.ClientMessageID = cmd.ClientMessageID
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	content, err := chat.ContentOf(cmd.Content)
	var m store.Message
	var created bool
	if err == nil {
		m, created, err = h.poster.PostMessage(ctx, id, ch.ID, content, cmd.ClientMessageID)
	}
	if err == nil {
		a.OK, a.Created, a.Message = true, created, &m
		h.reply(id, a)
		return pk, packets.CodeSuccessIgnore
	}
	if !chat.KindOf(err).ServerFault() {
		// The command was handled; its answer is a refusal. Acknowledge it, or the app would
		// resend it forever.
		e := chat.AsError(err)
		a.Error = &answerError{Code: e.Code, Message: e.Message}
		h.reply(id, a)
		return pk, packets.CodeSuccessIgnore
	}
	h.log.Warn("mqtt post failed", "client", cl.ID, "topic", pk.TopicName, "err", err.Error())
	a.Error = &answerError{Code: "store_unavailable", Message: "the message was not stored, retry later"}
	h.reply(id, a)
	// Not stored, so not acknowledged: MQTT 5 gets a negative PUBACK; 3.1.1, which has none,
	// gets no PUBACK and resends the command when it reconnects.
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return pk, mqttreason.Code(err, packets.Puback)
	}
	return pk, packets.ErrRejectPacket
}

func (h *Hook) reply(id auth.Identity, a answer) {
	payload, err := json.Marshal(a)
	if err == nil {
		err = h.pub.Publish(id.Org, channel.RepliesOf(string(id.Role), id.Subject), payload)
	}
	if err != nil {
		h.log.Error("mqtt command answer failed", "identity", id.String(), "err", err.Error())
	}
}
