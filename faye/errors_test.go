package faye

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/faye/bayeux"
)

// storeDown is an ACL whose store is down for every channel but /service/v1, which it forbids.
type storeDown struct{}

var errStoreDown = &chat.Error{Kind: chat.KindUnavailable, Code: "store_unavailable", Message: "the message store is unavailable, retry later"}

func (storeDown) decide(name string) error {
	if name == "/service/v1" {
		return chat.Forbidden("not yours")
	}
	return errStoreDown
}
func (a storeDown) CanSubscribe(_ context.Context, _ auth.Identity, name string) error {
	return a.decide(name)
}
func (a storeDown) CanPublish(_ context.Context, _ auth.Identity, name string) error {
	return a.decide(name)
}
func (storeDown) MayReceive(auth.Identity, string) bool { return true }

// TestStoreOutageIsRetryable: an ACL that cannot decide because the store is down must not
// read as a refusal: the reply is the retryable server error with advice, and the outage is
// logged with the channel and its cause. A refusal stays Faye's byte-exact 403.
func TestStoreOutageIsRetryable(t *testing.T) {
	var logs bytes.Buffer
	e := New(Config{Timeout: 45 * time.Second, IdleTimeout: time.Minute, MaxBatch: 10, MaxChannels: 10},
		storeDown{}, tokenIsSubject{}, permissive{}, permissive{}, slog.New(slog.NewTextHandler(&logs, nil)))
	run := func(batch string) string {
		t.Helper()
		msgs, err := bayeux.DecodeBatch([]byte(batch), 10)
		if err != nil {
			t.Fatal(err)
		}
		replies, _ := e.Process(context.Background(), nil, msgs, bayeux.LongPolling, Peer{IP: "127.0.0.1"})
		return string(bayeux.EncodeBatch(replies, nil))
	}
	hs := run(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"v1"}}]`)
	_, rest, _ := strings.Cut(hs, `"clientId":"`)
	id, _, _ := strings.Cut(rest, `"`)

	cases := []struct{ batch, want, log string }{
		{
			`[{"id":"1","channel":"/meta/subscribe","clientId":"` + id + `","subscription":"/conversations/c1","ext":{"token":"v1"}}]`,
			`[{"id":"1","clientId":"` + id + `","channel":"/meta/subscribe","successful":false,"subscription":"/conversations/c1","error":"500:/conversations/c1:Internal server error","advice":{"reconnect":"retry","interval":0,"timeout":45000}}]`,
			`level=WARN msg="faye: subscribe failed" channel=/conversations/c1 err="store_unavailable: the message store is unavailable, retry later"`,
		},
		{
			`[{"id":"2","channel":"/conversations/c1","clientId":"` + id + `","data":"hi","ext":{"token":"v1"}}]`,
			`[{"id":"2","clientId":"` + id + `","channel":"/conversations/c1","successful":false,"error":"500:/conversations/c1:Internal server error","advice":{"reconnect":"retry","interval":0,"timeout":45000}}]`,
			`level=WARN msg="faye: publish failed" channel=/conversations/c1 err="store_unavailable: the message store is unavailable, retry later"`,
		},
		{
			`[{"id":"3","channel":"/meta/subscribe","clientId":"` + id + `","subscription":"/service/v1","ext":{"token":"v1"}}]`,
			`[{"id":"3","clientId":"` + id + `","channel":"/meta/subscribe","successful":false,"subscription":"/service/v1","error":"403:/service/v1:Forbidden channel"}]`,
			"",
		},
	}
	for _, tc := range cases {
		logs.Reset()
		if got := run(tc.batch); got != tc.want {
			t.Errorf("reply to %s\n got %s\nwant %s", tc.batch, got, tc.want)
		}
		if got := logs.String(); !strings.Contains(got, tc.log) || tc.log == "" && got != "" {
			t.Errorf("log after %s\n got %q\nwant %q", tc.batch, got, tc.log)
		}
	}
}
