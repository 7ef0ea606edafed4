package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// TestChatFlow is the "chat initialisation procedure" of the original document, done by MQTT
// clients and the REST API: the visitor listens on its service channel, opens the chat, gets
// the conversation, both sides join its channel and talk; history and read receipts follow.
func TestChatFlow(t *testing.T) {
	e := start(t)
	vTok, mTok := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Manager, "shop", "m1")

	manager := e.onDuty(mTok, "manager-m1")
	visitor := e.mustConnect(vTok, "widget-v1")
	visitor.mustSubscribe("orgs/shop/service/v1")
	visitor.mustSubscribe("orgs/shop/notifications/v1")

	open := want(t, e.post("/chat/service/v1", vTok, map[string]any{"sender": map[string]string{"type": "visitor", "id": "v1"}}), http.StatusCreated)
	conv := open.obj("conversation")
	convID := fmt.Sprint(conv["id"])
	if conv["visitor_id"] != "v1" || conv["manager_id"] != "m1" || conv["status"] != "open" || conv["org_id"] != "shop" {
		t.Fatalf("conversation = %v", conv)
	}
	for _, c := range []*client{visitor, manager} {
		d := c.next()
		if d.topic != "orgs/shop/service/v1" || d.payload["entity"] != "conversation" || d.payload["conversation"].(map[string]any)["id"] != convID {
			t.Fatalf("announcement = %+v", d)
		}
	}
	// Opening again returns the same conversation with 200, and announces it again.
	again := want(t, e.post("/chat/service/v1", vTok, nil), http.StatusOK)
	if again.obj("conversation")["id"] != convID {
		t.Fatalf("reopen = %v", again.body)
	}
	visitor.next()
	manager.next()

	topic := "orgs/shop/conversations/" + convID
	visitor.mustSubscribe(topic)
	manager.mustSubscribe(topic)
	manager.mustSubscribe(topic + "/receipts")

	// Visitor → manager, by form body as the original widget posts.
	sent := want(t, e.post("/chat/conversation/"+convID, vTok, "content=Hello%21&sender[type]=visitor&sender[id]=v1&client_message_id=c1"), http.StatusCreated)
	msg := sent.obj("message")
	if msg["content"] != "Hello!" || msg["conversation_id"] != convID || msg["read"] != false || msg["client_message_id"] != "c1" {
		t.Fatalf("message = %v", msg)
	}
	for _, c := range []*client{visitor, manager} {
		d := c.next()
		if d.topic != topic || d.payload["entity"] != "message" || d.payload["message"].(map[string]any)["id"] != msg["id"] {
			t.Fatalf("delivery = %+v", d)
		}
	}
	// A retry of the same post is answered 200 with the same message and published no more.
	retry := want(t, e.post("/chat/conversation/"+convID, vTok, map[string]any{"content": "Hello!", "client_message_id": "c1"}), http.StatusOK)
	if retry.obj("message")["id"] != msg["id"] {
		t.Fatalf("retry returned another message: %v", retry.body)
	}
	// Manager → visitor, by query parameters.
	reply := want(t, e.post("/chat/conversation/"+convID+"?content=Hi,+how+can+I+help", mTok, nil), http.StatusCreated).obj("message")
	if d := visitor.next(); d.payload["message"].(map[string]any)["content"] != "Hi, how can I help" {
		t.Fatalf("visitor got %+v", d)
	}
	manager.next()

	hist := want(t, e.post("/chat/conversation/"+convID+"/messages", mTok, map[string]any{"count": 10}), http.StatusOK)
	msgs := hist.body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["id"] != reply["id"] {
		t.Fatalf("history (newest first) = %v", msgs)
	}
	catchUp := want(t, e.post("/chat/conversation/"+convID+"/messages", vTok, map[string]any{"after_id": msg["id"]}), http.StatusOK)
	if m := catchUp.body["messages"].([]any); len(m) != 1 || m[0].(map[string]any)["id"] != reply["id"] {
		t.Fatalf("catch-up after the first message = %v", m)
	}

	read := want(t, e.post(fmt.Sprintf("/chat/conversation/%s/message/%s/mark_read", convID, msg["id"]), mTok, nil), http.StatusOK).obj("message")
	if read["read"] != true || read["read_at"] == nil {
		t.Fatalf("marked = %v", read)
	}
	if d := manager.next(); d.topic != topic+"/receipts" || d.payload["entity"] != "receipt" {
		t.Fatalf("receipt = %+v", d)
	}

	svcTok := token(t, auth.Service, "shop", "backoffice")
	note := want(t, e.post("/chat/notifications/v1", svcTok, map[string]any{"notification": map[string]any{"title": "Sale"}}), http.StatusCreated)
	if note.obj("notification")["visitor_id"] != "v1" {
		t.Fatalf("notification = %v", note.body)
	}
	if d := visitor.next(); d.topic != "orgs/shop/notifications/v1" || d.payload["entity"] != "notification" ||
		d.payload["notification"].(map[string]any)["title"] != "Sale" {
		t.Fatalf("notification delivery = %+v", d)
	}

	closed := want(t, e.post("/chat/conversation/"+convID+"/close", vTok, nil), http.StatusOK).obj("conversation")
	if closed["status"] != "closed" {
		t.Fatalf("closed = %v", closed)
	}
	if r := e.post("/chat/conversation/"+convID, vTok, map[string]any{"content": "late"}); r.status != http.StatusConflict || r.errCode() != "conversation_closed" {
		t.Fatalf("post after close = %d %s", r.status, r.raw)
	}
}

func TestDutyFollowsSubscription(t *testing.T) {
	e := start(t)
	svcTok := token(t, auth.Service, "shop", "backoffice")
	want(t, e.call(http.MethodPut, "/admin/orgs/shop", svcTok, map[string]any{"name": "Shop", "chat_offline_message": "Back at 9"}), http.StatusOK)
	open := func(v string) reply {
		return e.post("/chat/service/"+v, token(t, auth.Visitor, "shop", v), nil)
	}
	if r := open("v1"); r.status != http.StatusUnprocessableEntity || r.errCode() != "chat_offline" || r.obj("error")["message"] != "Back at 9" {
		t.Fatalf("nobody on duty: %d %s", r.status, r.raw)
	}
	m := e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	want(t, open("v1"), http.StatusCreated)

	// Unsubscribing takes the manager off duty at once.
	if ut := m.c.Unsubscribe("orgs/shop/service/+"); !ut.WaitTimeout(5*time.Second) || ut.Error() != nil {
		t.Fatal("unsubscribe failed")
	}
	// Each probe uses a new visitor: a probe that raced ahead of the change opened a conversation.
	probe := 0
	offDuty := func() bool { probe++; return open(fmt.Sprint("probe", probe)).status == http.StatusUnprocessableEntity }
	waitFor(t, "manager off duty after unsubscribe", offDuty)

	m.mustSubscribe("orgs/shop/service/+")
	want(t, open("v3"), http.StatusCreated)
	m.close()
	waitFor(t, "manager off duty after disconnect", offDuty)

	// Capacity: a registered manager with capacity 1 already holding v1 is skipped.
	want(t, e.call(http.MethodPut, "/admin/orgs/shop/managers/m2", svcTok, map[string]any{"name": "Ann", "capacity": 1}), http.StatusOK)
	e.onDuty(token(t, auth.Manager, "shop", "m2"), "m2")
	if r := open("v5"); r.status != http.StatusCreated || r.obj("conversation")["manager_id"] != "m2" {
		t.Fatalf("m2 should take v5: %s", r.raw)
	}
	if r := open("v6"); r.errCode() != "chat_offline" {
		t.Fatalf("m2 is at capacity: %d %s", r.status, r.raw)
	}
}

// TestOrgIsolation: every publish reaches the right organisation's MQTT clients and nothing
// reaches another's, whatever they subscribe to.
func TestOrgIsolation(t *testing.T) {
	e := start(t)
	mA := e.mustConnect(token(t, auth.Manager, "A", "m1"), "a-m1")
	mA.mustSubscribe("orgs/A/service/+")
	mB := e.mustConnect(token(t, auth.Manager, "B", "m1"), "b-m1")
	mB.mustSubscribe("orgs/B/service/+")
	for _, f := range []string{"orgs/A/service/+", "orgs/+/service/+", "#", "orgs/#", "+/A/service/v1", "$SYS/#"} {
		if code := mB.subscribe(f); code != 0x80 {
			t.Errorf("manager of B subscribing %s: SUBACK 0x%x, want 0x80", f, code)
		}
	}
	conv := openConversation(t, e, token(t, auth.Visitor, "A", "v1"), "v1")
	if d := mA.next(); d.topic != "orgs/A/service/v1" {
		t.Fatalf("manager of A got %+v", d)
	}
	mB.none(300 * time.Millisecond)
	// B's visitor with the same visitor id is a different visitor.
	convB := openConversation(t, e, token(t, auth.Visitor, "B", "v1"), "v1")
	if convB["id"] == conv["id"] {
		t.Fatal("org B got org A's conversation")
	}
	if d := mB.next(); d.topic != "orgs/B/service/v1" {
		t.Fatalf("manager of B got %+v", d)
	}
	mA.none(300 * time.Millisecond)
	// Reading, posting or marking A's conversation with B's tokens: 404, not 403.
	id := fmt.Sprint(conv["id"])
	for _, tok := range []string{token(t, auth.Manager, "B", "m1"), token(t, auth.Visitor, "B", "v1"), token(t, auth.Service, "B", "s")} {
		for _, path := range []string{"/chat/conversation/" + id, "/chat/conversation/" + id + "/messages", "/chat/conversation/" + id + "/close"} {
			if r := e.post(path, tok, map[string]any{"content": "x"}); r.status != http.StatusNotFound {
				t.Errorf("POST %s with a token of B: %d %s", path, r.status, r.raw)
			}
		}
	}
}

func TestAnonymousSwitch(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Auth.AnonymousOrg = "shop" })
	e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	visitor := map[string]any{"sender": map[string]string{"type": "visitor", "id": "v1"}}
	conv := want(t, e.post("/chat/service/v1", "", visitor), http.StatusCreated).obj("conversation")
	if conv["org_id"] != "shop" {
		t.Fatalf("anonymous conversation = %v", conv)
	}
	want(t, e.post("/chat/conversation/"+fmt.Sprint(conv["id"]), "", "sender[type]=visitor&sender[id]=v1&content=hi"), http.StatusCreated)
	cases := []struct {
		name string
		path string
		body any
		code int
	}{
		{"a manager without token", "/chat/service/v1", map[string]any{"sender": map[string]string{"type": "manager", "id": "m1"}}, http.StatusUnauthorized},
		{"no sender", "/chat/service/v1", nil, http.StatusUnauthorized},
		{"another visitor's id", "/chat/service/v1", map[string]any{"sender": map[string]string{"type": "visitor", "id": "v2"}}, http.StatusForbidden},
		{"admin without token", "/chat/notifications/v1", map[string]any{"sender": map[string]string{"type": "visitor", "id": "v1"}, "notification": map[string]any{}}, http.StatusForbidden},
	}
	for _, tc := range cases {
		if r := e.post(tc.path, "", tc.body); r.status != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.raw, tc.code)
		}
	}
}

// TestRESTSeqAndCount: every message shows its gap-free seq (post reply, MQTT delivery,
// history), the history pages by since_seq/after_seq like by the ids, and a count above the
// default page is honoured up to api.messages_count_limit.
func TestRESTSeqAndCount(t *testing.T) {
	e := start(t, func(c *config.Config) { c.API.MaxMessagesCount, c.API.MessagesCountLimit = 2, 4 })
	vTok, mTok := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Manager, "shop", "m1")
	manager := e.onDuty(mTok, "manager-m1")
	convID := fmt.Sprint(openConversation(t, e, vTok, "v1")["id"])
	manager.next()
	manager.mustSubscribe("orgs/shop/conversations/" + convID)
	for i := 1; i <= 5; i++ {
		m := want(t, e.post("/chat/conversation/"+convID, vTok, map[string]any{"content": fmt.Sprint("m", i)}), http.StatusCreated).obj("message")
		d := manager.next().payload["message"].(map[string]any)
		if m["seq"] != float64(i) || d["seq"] != float64(i) {
			t.Fatalf("message %d: seq %v in the reply, %v delivered; want %d", i, m["seq"], d["seq"], i)
		}
	}
	hist := "/chat/conversation/" + convID + "/messages"
	cases := []struct {
		name string
		path string
		body any
		want string // seqs in reply order
		code string
	}{
		{"default page", hist, nil, "5,4", ""},
		{"count above the default", hist, map[string]any{"count": 3}, "5,4,3", ""},
		{"count above the limit is clamped", hist + "?count=50", nil, "5,4,3,2", ""},
		{"since_seq inclusive", hist, map[string]any{"since_seq": 3}, "3,2", ""},
		{"after_seq exclusive, oldest first", hist + "?after_seq=2", nil, "3,4", ""},
		{"after_seq 0 from the first", hist, map[string]any{"after_seq": "0", "count": 4}, "1,2,3,4", ""},
		{"after_seq and after_id", hist, map[string]any{"after_seq": 1, "after_id": "x"}, "", "invalid_params"},
		{"bad after_seq", hist + "?after_seq=-1", nil, "", "invalid_after_seq"},
		{"since_seq 0", hist, map[string]any{"since_seq": 0}, "", "invalid_since_seq"},
	}
	for _, tc := range cases {
		r := e.post(tc.path, vTok, tc.body)
		if tc.code != "" {
			if r.status != http.StatusBadRequest || r.errCode() != tc.code {
				t.Errorf("%s: %d %s, want 400 %s", tc.name, r.status, r.raw, tc.code)
			}
			continue
		}
		var seqs []string
		for _, m := range want(t, r, http.StatusOK).body["messages"].([]any) {
			seqs = append(seqs, fmt.Sprint(m.(map[string]any)["seq"]))
		}
		if got := strings.Join(seqs, ","); got != tc.want {
			t.Errorf("%s: seqs %s, want %s", tc.name, got, tc.want)
		}
	}
}
