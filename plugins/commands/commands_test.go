package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/store"
)

type ids map[*mqtt.Client]auth.Identity

func (m ids) Identity(cl *mqtt.Client) (auth.Identity, bool) { id, ok := m[cl]; return id, ok }

// poster answers by content: "refuse" → a client error, "down" → store unavailable.
type poster struct{ calls int }

func (p *poster) PostMessage(_ context.Context, id auth.Identity, conv, content, cmid string) (store.Message, bool, error) {
	p.calls++
	switch content {
	case "refuse":
		return store.Message{}, false, chat.Invalid("invalid_content", "no")
	case "down":
		return store.Message{}, false, fmt.Errorf("%w (%w)", &chat.Error{Kind: chat.KindUnavailable, Code: "store_unavailable"}, errors.New("dial"))
	}
	return store.Message{ID: "m1", ConversationID: conv, Content: content, ClientMessageID: cmid}, true, nil
}

type published struct{ org, name, payload string }

type pub struct{ got []published }

func (p *pub) Publish(org, name string, payload []byte) error {
	p.got = append(p.got, published{org, name, string(payload)})
	return nil
}

func TestOnPublish(t *testing.T) {
	v3, v5, inline := &mqtt.Client{ID: "a"}, &mqtt.Client{ID: "b"}, &mqtt.Client{ID: "inline", Net: mqtt.ClientConnection{Inline: true}}
	v3.Properties.ProtocolVersion, v5.Properties.ProtocolVersion = 4, 5
	mgr := auth.Identity{Subject: "m1", Role: auth.Manager, Org: "O"}
	p, out := &poster{}, &pub{}
	h := New(ids{v3: mgr, v5: mgr}, p, out, slog.New(slog.NewTextHandler(io.Discard, nil)))
	post := "orgs/O/conversations/c1/post"
	cases := []struct {
		name    string
		cl      *mqtt.Client
		topic   string
		payload string
		err     error
		answer  string // code in the answer, "ok", or "" for none
	}{
		{"other topic passes", v3, "orgs/O/conversations/c1/typing", `{}`, nil, ""},
		{"not a tenant topic passes", v3, "x/y", `{}`, nil, ""},
		{"server publish to post is dropped", inline, post, `{"content":"x"}`, packets.ErrRejectPacket, ""},
		{"post of another org is dropped", v3, "orgs/P/conversations/c1/post", `{"content":"x"}`, packets.ErrRejectPacket, ""},
		{"bad JSON is answered", v3, post, `nope`, packets.CodeSuccessIgnore, "invalid_json"},
		{"unknown fields are answered", v3, post, `{"content":"x","sender":"m2"}`, packets.CodeSuccessIgnore, "invalid_json"},
		{"stored", v3, post, `{"content":"hi","client_message_id":"k"}`, packets.CodeSuccessIgnore, "ok"},
		{"refused is acknowledged", v3, post, `{"content":"refuse"}`, packets.CodeSuccessIgnore, "invalid_content"},
		{"number content is refused", v3, post, `{"content":42}`, packets.CodeSuccessIgnore, "invalid_content"},
		{"object content is refused", v3, post, `{"content":{"a":1}}`, packets.CodeSuccessIgnore, "invalid_content"},
		{"array content is refused", v3, post, `{"content":["hi"]}`, packets.CodeSuccessIgnore, "invalid_content"},
		{"boolean content is refused", v3, post, `{"content":true}`, packets.CodeSuccessIgnore, "invalid_content"},
		{"null content is refused", v3, post, `{"content":null}`, packets.CodeSuccessIgnore, "invalid_content"},
		{"store down, 3.1.1: no PUBACK", v3, post, `{"content":"down"}`, packets.ErrRejectPacket, "store_unavailable"},
		{"store down, 5: negative PUBACK", v5, post, `{"content":"down"}`, packets.ErrUnspecifiedError, "store_unavailable"},
	}
	for _, tc := range cases {
		out.got = nil
		pk := packets.Packet{TopicName: tc.topic, Payload: []byte(tc.payload), FixedHeader: packets.FixedHeader{Qos: 1}}
		_, err := h.OnPublish(tc.cl, pk)
		if !errors.Is(err, tc.err) && err != tc.err {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
		if tc.answer == "" {
			if len(out.got) != 0 {
				t.Errorf("%s: answered %v", tc.name, out.got)
			}
			continue
		}
		if len(out.got) != 1 || out.got[0].org != "O" || out.got[0].name != "/replies/manager/m1" {
			t.Fatalf("%s: answers %v", tc.name, out.got)
		}
		var a answer
		_ = json.Unmarshal([]byte(out.got[0].payload), &a)
		got := "ok"
		if a.Error != nil {
			got = a.Error.Code
		}
		if got != tc.answer || (tc.answer == "ok" && (!a.OK || a.Message.Content != "hi" || a.ClientMessageID != "k")) {
			t.Errorf("%s: answer %s, want %s", tc.name, out.got[0].payload, tc.answer)
		}
	}
}
