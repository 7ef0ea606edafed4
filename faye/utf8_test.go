package faye

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/faye/bayeux"
)

// echoBroker hands publishes straight back to the engine, as the real broker does.
type echoBroker struct{ e *Engine }

func (b *echoBroker) Publish(org, name string, payload []byte) error {
	topic, err := channel.ToTopic(org, name)
	if err != nil {
		return err
	}
	b.e.Deliver(topic, payload)
	return nil
}

// FuzzOutputIsUTF8: whatever a client sends, and whatever an MQTT client publishes, every
// reply and delivery the engine writes is valid UTF-8.
func FuzzOutputIsUTF8(f *testing.F) {
	for _, s := range []string{
		`[{"channel":"/foo","data":"\udc00","id":"\ud800"}]`,
		"[{\"channel\":\"/foo\",\"data\":\"\xff\"}]",
		`[{"channel":"/foo","data":{"a":["\ud83d\ude00"]},"id":1}]`,
		"[{\"channel\":\"/meta/subscribe\",\"subscription\":\"/\xc3\",\"clientId\":\"x\"}]",
		"[{\"channel\":\"/meta/handshake\",\"version\":\"1.0\",\"supportedConnectionTypes\":[\"\xff\"],\"id\":\"\xfe\"}]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		b := &echoBroker{}
		e := New(Config{Timeout: time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10, MaxQueue: 100, AnonymousOrg: "shop"},
			permissive{}, permissive{}, permissive{}, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
		b.e = e
		s := newSession(newClientID(""), time.Now())
		s.identity, s.hasIdentity = auth.Identity{Subject: "s", Role: auth.Service, Org: "shop"}, true
		e.sessions[s.id] = s
		s.subs.add("/foo")
		e.idx.add("shop", "/foo", s)
		if msgs, err := bayeux.DecodeBatch([]byte(body), 10); err == nil {
			replies, _ := e.Process(context.Background(), nil, msgs, bayeux.LongPolling, Peer{IP: "127.0.0.1"})
			if out := bayeux.EncodeBatch(replies, nil); !utf8.Valid(out) {
				t.Fatalf("replies to %q: invalid UTF-8 %q", body, out)
			}
		}
		topic, err := channel.ToTopic("shop", "/foo")
		if err != nil {
			t.Fatal(err)
		}
		e.Deliver(topic, []byte(body)) // as an MQTT payload
		for _, d := range s.take() {
			if !utf8.Valid(d) || !bayeux.ValidJSONText(d) {
				t.Fatalf("delivery after %q: invalid text %q", body, d)
			}
		}
	})
}
