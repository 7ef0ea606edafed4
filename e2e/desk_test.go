package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// The support desk of README "The support desk", from the outside.

func (e *env) get(path, tok string) reply {
	e.t.Helper()
	return e.call(http.MethodGet, path, tok, nil)
}

// items returns the listing's items and the conversation id of each, in order.
func items(t testing.TB, r reply) ([]map[string]any, []string) {
	t.Helper()
	list, ok := r.body["conversations"].([]any)
	if !ok {
		t.Fatalf("no conversations list in %s", r.raw)
	}
	var out []map[string]any
	var ids []string
	for _, it := range list {
		m := it.(map[string]any)
		out = append(out, m)
		ids = append(ids, fmt.Sprint(m["conversation"].(map[string]any)["id"]))
	}
	return out, ids
}

// goOnDuty connects manager over MQTT and subscribes it to its organisation's service
// channels, which puts it on duty.
func goOnDuty(e *env, org, manager string) *client {
	e.t.Helper()
	c := e.mustConnect(token(e.t, auth.Manager, org, manager), "duty-"+org+"-"+manager)
	c.mustSubscribe("orgs/" + org + "/service/+")
	return c
}

// openAs opens the conversation of visitor with its own token and returns its id.
func openAs(t testing.TB, e *env, org, visitor string, status int) string {
	t.Helper()
	r := want(t, e.post("/chat/service/"+visitor, token(t, auth.Visitor, org, visitor), nil), status)
	return fmt.Sprint(r.obj("conversation")["id"])
}

// nextOn waits for a delivery on topic, skipping others.
func (c *client) nextOn(topic string) delivery {
	c.t.Helper()
	for {
		if d := c.next(); d.topic == topic {
			return d
		}
	}
}

func TestDeskListing(t *testing.T) {
	e := start(t)
	m1, m2 := token(t, auth.Manager, "shop", "m1"), token(t, auth.Manager, "shop", "m2")
	svc := token(t, auth.Service, "shop", "backoffice")
	goOnDuty(e, "shop", "m1")
	var convs []string // oldest first
	for i := 1; i <= 5; i++ {
		convs = append(convs, openAs(t, e, "shop", fmt.Sprint("v", i), http.StatusCreated))
	}
	// Newest first; two openings within one millisecond are ordered by id, so the expected
	// order is the service's listing once it holds the same conversations.
	_, newestFirst := items(t, want(t, e.get("/chat/conversations", svc), http.StatusOK))
	if !slices.Equal(slices.Sorted(slices.Values(newestFirst)), slices.Sorted(slices.Values(convs))) {
		t.Fatalf("service listing = %v, want %v", newestFirst, convs)
	}
	if slices.Equal(newestFirst, convs) && len(convs) > 1 {
		t.Fatalf("listing %v is oldest first", newestFirst)
	}

	// A manager's default is its own open conversations; a service sees all.
	if _, ids := items(t, want(t, e.get("/chat/conversations", m1), http.StatusOK)); !slices.Equal(ids, newestFirst) {
		t.Fatalf("m1's listing = %v, want %v", ids, newestFirst)
	}
	if _, ids := items(t, want(t, e.get("/chat/conversations", m2), http.StatusOK)); len(ids) != 0 {
		t.Fatalf("m2 holds nothing but lists %v", ids)
	}
	if _, ids := items(t, want(t, e.get("/chat/conversations?manager_id=m1", m2), http.StatusOK)); len(ids) != 5 {
		t.Fatalf("m2 asking for m1's conversations lists %v", ids)
	}
	if _, ids := items(t, want(t, e.get("/chat/conversations", svc), http.StatusOK)); !slices.Equal(ids, newestFirst) {
		t.Fatalf("service listing = %v, want %v", ids, newestFirst)
	}
	if _, ids := items(t, want(t, e.get("/chat/conversations?status=closed", svc), http.StatusOK)); len(ids) != 0 {
		t.Fatalf("closed listing = %v, want none", ids)
	}
	// A visitor sees its own only, whatever it asks for.
	v1 := token(t, auth.Visitor, "shop", "v1")
	if _, ids := items(t, want(t, e.get("/chat/conversations?status=open", v1), http.StatusOK)); !slices.Equal(ids, convs[:1]) {
		t.Fatalf("v1's listing = %v, want %v", ids, convs[:1])
	}
	if r := e.get("/chat/conversations?visitor_id=v2", v1); r.status != http.StatusForbidden {
		t.Fatalf("v1 listing v2's: %d %s", r.status, r.raw)
	}
	// Another organisation lists nothing of shop's and reads none of them.
	for _, tok := range []string{token(t, auth.Visitor, "other", "v1"), token(t, auth.Manager, "other", "m1"), token(t, auth.Service, "other", "s")} {
		if _, ids := items(t, want(t, e.get("/chat/conversations?manager_id=m1", tok), http.StatusOK)); len(ids) != 0 {
			t.Errorf("another organisation lists %v", ids)
		}
		if r := e.get("/chat/conversation/"+convs[0], tok); r.status != http.StatusNotFound || r.errCode() != "conversation_not_found" {
			t.Errorf("another organisation reads an item: %d %s", r.status, r.raw)
		}
	}

	// Pages of 2 over 5, with a sixth opened between pages: the pages go on as they started.
	var paged []string
	cursor := ""
	for page := 0; ; page++ {
		r := want(t, e.get("/chat/conversations?limit=2&cursor="+url.QueryEscape(cursor), svc), http.StatusOK)
		_, ids := items(t, r)
		if len(ids) > 2 {
			t.Fatalf("page %d has %d items with limit 2", page, len(ids))
		}
		paged = append(paged, ids...)
		if page == 0 {
			openAs(t, e, "shop", "v6", http.StatusCreated)
		}
		if cursor = fmt.Sprint(r.body["next_cursor"]); cursor == "" {
			break
		}
		if page > 5 {
			t.Fatalf("more pages than conversations: %v", paged)
		}
	}
	if !slices.Equal(paged, newestFirst) {
		t.Fatalf("paged listing = %v, want %v", paged, newestFirst)
	}
	// A cursor made from another organisation's conversation only positions shop's listing.
	otherMgr, otherSvc := token(t, auth.Manager, "other", "om"), token(t, auth.Service, "other", "s")
	var theirs []string
	for _, v := range []string{"o1", "o2"} {
		theirs = append(theirs, fmt.Sprint(openConversation(t, e, otherMgr, v)["id"]))
	}
	foreign := fmt.Sprint(want(t, e.get("/chat/conversations?limit=1", otherSvc), http.StatusOK).body["next_cursor"])
	got, ids := items(t, want(t, e.get("/chat/conversations?cursor="+url.QueryEscape(foreign), svc), http.StatusOK))
	for i, it := range got {
		if it["conversation"].(map[string]any)["org_id"] != "shop" || slices.Contains(theirs, ids[i]) {
			t.Fatalf("a foreign cursor listed %v", it)
		}
	}
	if len(got) != 6 {
		t.Fatalf("a foreign cursor listed %d of shop's 6 conversations: %v", len(got), ids)
	}
	for _, c := range []struct{ query, code string }{
		{"limit=201", "invalid_limit"}, {"limit=-1", "invalid_limit"}, {"limit=x", "invalid_limit"},
		{"status=archived", "invalid_status"}, {"cursor=not-a-cursor!", "invalid_cursor"}, {"cursor=AAAA", "invalid_cursor"},
	} {
		if r := e.get("/chat/conversations?"+c.query, svc); r.status != http.StatusBadRequest || r.errCode() != c.code {
			t.Errorf("?%s: %d %s, want 400 %s", c.query, r.status, r.raw, c.code)
		}
	}

	// last_message and unread_count move with posts and receipts, for each side.
	conv := convs[0]
	item := func(tok string) map[string]any {
		t.Helper()
		return want(t, e.get("/chat/conversation/"+conv, tok), http.StatusOK).body
	}
	check := func(tok, who, last string, unread int) {
		t.Helper()
		it := item(tok)
		lm, _ := it["last_message"].(map[string]any)
		if it["conversation"].(map[string]any)["id"] != conv || (last == "" && lm != nil) || (last != "" && (lm == nil || lm["content"] != last)) || it["unread_count"] != float64(unread) {
			t.Fatalf("%s's item = %v, want last %q and %d unread", who, it, last, unread)
		}
		_, ids := items(t, want(t, e.get("/chat/conversations?visitor_id=v1", tok), http.StatusOK))
		if !slices.Equal(ids, []string{conv}) {
			t.Fatalf("%s's listing of v1 = %v", who, ids)
		}
	}
	check(m1, "m1", "", 0)
	check(v1, "v1", "", 0)
	hello := want(t, e.post("/chat/conversation/"+conv, v1, map[string]any{"content": "hello"}), http.StatusCreated).obj("message")
	check(m1, "m1", "hello", 1)
	check(v1, "v1", "hello", 0)
	hi := want(t, e.post("/chat/conversation/"+conv, m1, map[string]any{"content": "hi"}), http.StatusCreated).obj("message")
	check(m1, "m1", "hi", 1)
	check(v1, "v1", "hi", 1)
	want(t, e.post(fmt.Sprintf("/chat/conversation/%s/message/%s/mark_read", conv, hello["id"]), m1, nil), http.StatusOK)
	check(m1, "m1", "hi", 0)
	want(t, e.post(fmt.Sprintf("/chat/conversation/%s/message/%s/mark_read", conv, hi["id"]), v1, nil), http.StatusOK)
	check(v1, "v1", "hi", 0)
	if r := e.get("/chat/conversation/"+conv, token(t, auth.Visitor, "shop", "v2")); r.status != http.StatusForbidden {
		t.Fatalf("v2 reads v1's item: %d %s", r.status, r.raw)
	}

	// GET of the history takes the query parameters of the POST.
	msgs := want(t, e.get("/chat/conversation/"+conv+"/messages?count=1", v1), http.StatusOK).body["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["id"] != hi["id"] {
		t.Fatalf("GET history count=1 = %v, want the newest", msgs)
	}
	msgs = want(t, e.get("/chat/conversation/"+conv+"/messages?after_seq=0", m1), http.StatusOK).body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["id"] != hello["id"] {
		t.Fatalf("GET history after_seq=0 = %v, want both oldest first", msgs)
	}
}

// fayeSubscribe subscribes a long-polling Faye session of tok to ch and tells whether the
// server accepted.
func fayeSubscribe(e *env, tok, ch string) bool {
	e.t.Helper()
	cid := e.handshake(tok)
	_, r, _ := e.bayeux(`[{"channel":"/meta/subscribe","clientId":"` + cid + `","subscription":"` + ch + `","ext":{"token":"` + tok + `"}}]`)
	if len(r) != 1 {
		e.t.Fatalf("subscribe %s: %v", ch, r)
	}
	return r[0]["successful"] == true
}

func TestDeskTransfer(t *testing.T) {
	e := start(t)
	svc := token(t, auth.Service, "shop", "backoffice")
	m1, m2 := token(t, auth.Manager, "shop", "m1"), token(t, auth.Manager, "shop", "m2")
	want(t, e.call(http.MethodPut, "/admin/orgs/shop/managers/m2", svc, map[string]any{"capacity": 1}), http.StatusOK)
	want(t, e.call(http.MethodPut, "/admin/orgs/shop/managers/m4", svc, map[string]any{"name": "Fourth"}), http.StatusOK)
	duty1 := goOnDuty(e, "shop", "m1")
	a, b := openAs(t, e, "shop", "v1", http.StatusCreated), openAs(t, e, "shop", "v2", http.StatusCreated)
	duty1.nextOn("orgs/shop/service/v1")
	duty2 := goOnDuty(e, "shop", "m2")

	// Before the transfer m1 may subscribe, by MQTT and by Faye: what follows is the transfer's doing.
	if code := duty1.subscribe("orgs/shop/conversations/" + b); code >= 0x80 {
		t.Fatalf("m1 subscribing its own conversation: 0x%x", code)
	}
	if !fayeSubscribe(e, m1, "/conversations/"+a) {
		t.Fatal("m1 subscribing its own conversation by Faye refused")
	}

	if r := e.post("/chat/conversation/"+a+"/transfer", m2, map[string]any{"manager_id": "m2"}); r.status != http.StatusForbidden {
		t.Fatalf("m2 taking m1's conversation: %d %s", r.status, r.raw)
	}
	moved := want(t, e.post("/chat/conversation/"+a+"/transfer", m1, map[string]any{"manager_id": "m2"}), http.StatusOK).obj("conversation")
	if moved["manager_id"] != "m2" || moved["status"] != "open" || fmt.Sprint(moved["previous_manager_ids"]) != "[m1]" {
		t.Fatalf("transferred = %v", moved)
	}
	if d := duty2.nextOn("orgs/shop/service/v1"); d.payload["conversation"].(map[string]any)["manager_id"] != "m2" {
		t.Fatalf("m2's announcement = %+v", d)
	}
	// m2 has capacity 1, now used.
	if r := e.post("/chat/conversation/"+b+"/transfer", svc, map[string]any{"manager_id": "m2"}); r.status != http.StatusConflict || r.errCode() != "manager_full" {
		t.Fatalf("transfer to a full manager: %d %s", r.status, r.raw)
	}
	if r := e.post("/chat/conversation/"+b+"/transfer", svc, map[string]any{"manager_id": "m3"}); r.status != http.StatusNotFound || r.errCode() != "manager_not_found" {
		t.Fatalf("transfer to an unknown manager: %d %s", r.status, r.raw)
	}
	if r := e.post("/chat/conversation/"+b+"/transfer", token(t, auth.Visitor, "shop", "v2"), map[string]any{"manager_id": "m4"}); r.status != http.StatusForbidden {
		t.Fatalf("visitor transferring: %d %s", r.status, r.raw)
	}
	if got := want(t, e.post("/chat/conversation/"+b+"/transfer", svc, map[string]any{"manager_id": "m4"}), http.StatusOK).obj("conversation"); got["manager_id"] != "m4" {
		t.Fatalf("service transfer = %v", got)
	}

	// The previous manager can no longer post, read or subscribe.
	if r := e.post("/chat/conversation/"+a, m1, map[string]any{"content": "still here?"}); r.status != http.StatusForbidden {
		t.Fatalf("previous manager posting: %d %s", r.status, r.raw)
	}
	for _, path := range []string{"/chat/conversation/" + a, "/chat/conversation/" + a + "/messages"} {
		if r := e.get(path, m1); r.status != http.StatusForbidden {
			t.Errorf("previous manager GET %s: %d %s", path, r.status, r.raw)
		}
	}
	if code := duty1.subscribe("orgs/shop/conversations/" + a); code != 0x80 {
		t.Errorf("previous manager subscribing by MQTT: 0x%x, want 0x80", code)
	}
	if fayeSubscribe(e, m1, "/conversations/"+a) {
		t.Error("previous manager subscribing by Faye was accepted")
	}
	// The new manager talks in it.
	duty2.mustSubscribe("orgs/shop/conversations/" + a)
	want(t, e.post("/chat/conversation/"+a, m2, map[string]any{"content": "I take over"}), http.StatusCreated)
	if d := duty2.nextOn("orgs/shop/conversations/" + a); d.payload["message"].(map[string]any)["content"] != "I take over" {
		t.Fatalf("new manager got %+v", d)
	}
}

func TestDeskOfflineQueue(t *testing.T) {
	e := start(t)
	svc := token(t, auth.Service, "shop", "backoffice")
	want(t, e.call(http.MethodPut, "/admin/orgs/shop", svc, map[string]any{"chat_offline_message": "Back soon", "offline_mode": "queue"}), http.StatusOK)
	want(t, e.call(http.MethodPut, "/admin/orgs/shop/managers/m1", svc, map[string]any{"capacity": 1}), http.StatusOK)
	v1 := token(t, auth.Visitor, "shop", "v1")
	open := want(t, e.post("/chat/service/v1", v1, nil), http.StatusCreated)
	first := open.obj("conversation")
	if first["status"] != "pending" || first["manager_id"] != "" || open.body["chat_offline_message"] != "Back soon" {
		t.Fatalf("queued opening = %s", open.raw)
	}
	again := want(t, e.post("/chat/service/v1", v1, nil), http.StatusOK)
	if again.obj("conversation")["id"] != first["id"] || again.body["chat_offline_message"] != "Back soon" {
		t.Fatalf("reopening a pending conversation = %s", again.raw)
	}
	c1 := fmt.Sprint(first["id"])
	c2 := openAs(t, e, "shop", "v2", http.StatusCreated)
	waiting := want(t, e.post("/chat/conversation/"+c1, v1, map[string]any{"content": "anyone?"}), http.StatusCreated).obj("message")
	if _, ids := items(t, want(t, e.get("/chat/conversations?status=pending", token(t, auth.Manager, "shop", "m9")), http.StatusOK)); !slices.Equal(ids, []string{c2, c1}) {
		t.Fatalf("pending listing = %v, want %v", ids, []string{c2, c1})
	}

	// m1 (capacity 1) comes on duty: it gets the oldest pending one, announced on the service topic.
	duty := goOnDuty(e, "shop", "m1")
	d := duty.nextOn("orgs/shop/service/v1")
	if got := d.payload["conversation"].(map[string]any); got["id"] != c1 || got["manager_id"] != "m1" || got["status"] != "open" {
		t.Fatalf("assignment = %+v", d)
	}
	msgs := want(t, e.get("/chat/conversation/"+c1+"/messages", token(t, auth.Manager, "shop", "m1")), http.StatusOK).body["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["id"] != waiting["id"] {
		t.Fatalf("history after assignment = %v", msgs)
	}
	if st := want(t, e.get("/chat/conversation/"+c2, svc), http.StatusOK).obj("conversation")["status"]; st != "pending" {
		t.Fatalf("second conversation beyond m1's capacity is %v", st)
	}

	// Claims.
	if r := e.post("/chat/conversation/"+c2+"/claim", v1, nil); r.status != http.StatusForbidden {
		t.Fatalf("visitor claiming: %d %s", r.status, r.raw)
	}
	if r := e.post("/chat/conversation/"+c2+"/claim", token(t, auth.Manager, "shop", "m1"), nil); r.status != http.StatusConflict || r.errCode() != "manager_full" {
		t.Fatalf("claim beyond capacity: %d %s", r.status, r.raw)
	}
	m2 := token(t, auth.Manager, "shop", "m2")
	if got := want(t, e.post("/chat/conversation/"+c2+"/claim", m2, nil), http.StatusOK).obj("conversation"); got["manager_id"] != "m2" || got["status"] != "open" {
		t.Fatalf("claimed = %v", got)
	}
	for _, c := range []string{c1, c2} {
		if r := e.post("/chat/conversation/"+c+"/claim", token(t, auth.Manager, "shop", "m3"), nil); r.status != http.StatusConflict || r.errCode() != "conversation_not_pending" {
			t.Errorf("claiming an open conversation: %d %s", r.status, r.raw)
		}
	}
	want(t, e.post("/chat/conversation/"+c2+"/close", m2, nil), http.StatusOK)
	if r := e.post("/chat/conversation/"+c2+"/claim", m2, nil); r.status != http.StatusConflict || r.errCode() != "conversation_closed" {
		t.Errorf("claiming a closed conversation: %d %s", r.status, r.raw)
	}

	// Refuse, the default, still refuses.
	want(t, e.call(http.MethodPut, "/admin/orgs/strict", token(t, auth.Service, "strict", "s"), map[string]any{"chat_offline_message": "Closed"}), http.StatusOK)
	if r := e.post("/chat/service/v1", token(t, auth.Visitor, "strict", "v1"), nil); r.status != http.StatusUnprocessableEntity || r.errCode() != "chat_offline" {
		t.Fatalf("refuse mode: %d %s", r.status, r.raw)
	}
	for _, c := range []struct {
		body map[string]any
		code string
	}{
		{map[string]any{"offline_mode": "wait"}, "invalid_offline_mode"},
		{map[string]any{"reassign_after": "soon"}, "invalid_reassign_after"},
		{map[string]any{"reassign_after": "10ms"}, "invalid_reassign_after"},
		{map[string]any{"retention": -1}, "invalid_retention"},
		{map[string]any{"retention": 100000}, "invalid_retention"},
	} {
		if r := e.call(http.MethodPut, "/admin/orgs/shop", svc, c.body); r.status != http.StatusBadRequest || r.errCode() != c.code {
			t.Errorf("PUT %v: %d %s, want 400 %s", c.body, r.status, r.raw, c.code)
		}
	}
}

func TestDeskReassignAfter(t *testing.T) {
	e := start(t, func(c *config.Config) { c.API.SweepInterval = 100 * time.Millisecond })
	svc := token(t, auth.Service, "shop", "backoffice")
	want(t, e.call(http.MethodPut, "/admin/orgs/shop", svc, map[string]any{"reassign_after": "1s"}), http.StatusOK)
	dutyA := goOnDuty(e, "shop", "ma")
	conv := openAs(t, e, "shop", "v1", http.StatusCreated)
	v1 := token(t, auth.Visitor, "shop", "v1")
	want(t, e.post("/chat/conversation/"+conv, v1, map[string]any{"content": "before"}), http.StatusCreated)
	dutyA.close()
	dutyB := goOnDuty(e, "shop", "mb")
	want(t, e.post("/chat/conversation/"+conv, v1, map[string]any{"content": "meanwhile"}), http.StatusCreated)
	d := dutyB.nextOn("orgs/shop/service/v1")
	if got := d.payload["conversation"].(map[string]any); got["id"] != conv || got["manager_id"] != "mb" {
		t.Fatalf("reassignment announcement = %+v", d)
	}
	waitFor(t, "the conversation listed as mb's", func() bool {
		_, ids := items(t, want(t, e.get("/chat/conversations", token(t, auth.Manager, "shop", "mb")), http.StatusOK))
		return slices.Equal(ids, []string{conv})
	})
	msgs := want(t, e.get("/chat/conversation/"+conv+"/messages?after_seq=0", token(t, auth.Manager, "shop", "mb")), http.StatusOK).body["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["content"] != "before" || msgs[1].(map[string]any)["content"] != "meanwhile" {
		t.Fatalf("history after reassignment = %v", msgs)
	}
	if r := e.post("/chat/conversation/"+conv, token(t, auth.Manager, "shop", "ma"), map[string]any{"content": "back"}); r.status != http.StatusForbidden {
		t.Fatalf("the manager it was taken from posting: %d %s", r.status, r.raw)
	}
}

func TestDeskEraseVisitor(t *testing.T) {
	e := start(t)
	svc := token(t, auth.Service, "shop", "backoffice")
	m1 := token(t, auth.Manager, "shop", "m1")
	duty := goOnDuty(e, "shop", "m1")
	v1, v2 := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Visitor, "shop", "v2")
	c1, c2 := openAs(t, e, "shop", "v1", http.StatusCreated), openAs(t, e, "shop", "v2", http.StatusCreated)
	want(t, e.post("/chat/conversation/"+c1, v1, map[string]any{"content": "erase me"}), http.StatusCreated)
	want(t, e.post("/chat/conversation/"+c2, v2, map[string]any{"content": "keep me"}), http.StatusCreated)
	status := "orgs/shop/conversations/" + c1 + "/status"
	duty.mustSubscribe(status)
	widget := e.mustConnect(v1, "widget-v1")
	widget.mustSubscribe(status)

	for _, c := range []struct {
		tok, path string
		code      int
	}{
		{m1, "/admin/orgs/shop/visitors/v1", http.StatusForbidden},
		{v1, "/admin/orgs/shop/visitors/v1", http.StatusForbidden},
		{token(t, auth.Service, "other", "s"), "/admin/orgs/shop/visitors/v1", http.StatusForbidden},
		{svc, "/admin/orgs/shop/visitors/bad.id", http.StatusBadRequest},
	} {
		if r := e.call(http.MethodDelete, c.path, c.tok, nil); r.status != c.code {
			t.Errorf("DELETE %s: %d %s, want %d", c.path, r.status, r.raw, c.code)
		}
	}
	if r := e.get("/chat/conversation/"+c1, svc); r.status != http.StatusOK {
		t.Fatalf("refused erasures erased: %d %s", r.status, r.raw)
	}

	want(t, e.call(http.MethodDelete, "/admin/orgs/shop/visitors/v1", svc, nil), http.StatusNoContent)
	for who, c := range map[string]*client{"manager": duty, "visitor": widget} {
		if d := c.nextOn(status); d.payload["conversation"].(map[string]any)["status"] != "closed" {
			t.Errorf("%s got %+v, want the closing", who, d)
		}
	}
	if r := e.get("/chat/conversation/"+c1, svc); r.status != http.StatusNotFound {
		t.Fatalf("erased conversation still read: %d %s", r.status, r.raw)
	}
	if _, ids := items(t, want(t, e.get("/chat/conversations?visitor_id=v1&status=closed", svc), http.StatusOK)); len(ids) != 0 {
		t.Fatalf("erased visitor still lists %v", ids)
	}
	fresh := openAs(t, e, "shop", "v1", http.StatusCreated)
	if msgs := want(t, e.get("/chat/conversation/"+fresh+"/messages", v1), http.StatusOK).body["messages"].([]any); len(msgs) != 0 {
		t.Fatalf("history of the erased visitor = %v", msgs)
	}
	want(t, e.call(http.MethodDelete, "/admin/orgs/shop/visitors/v1", svc, nil), http.StatusNoContent)
	want(t, e.call(http.MethodDelete, "/admin/orgs/shop/visitors/nobody", svc, nil), http.StatusNoContent)

	msgs := want(t, e.get("/chat/conversation/"+c2+"/messages", v2), http.StatusOK).body["messages"].([]any)
	if len(msgs) != 1 || msgs[0].(map[string]any)["content"] != "keep me" {
		t.Fatalf("another visitor's history = %v", msgs)
	}
}

func TestDeskAdminReads(t *testing.T) {
	e := start(t)
	svc := token(t, auth.Service, "shop", "backoffice")
	want(t, e.call(http.MethodPut, "/admin/orgs/shop", svc, map[string]any{"name": "Shop", "offline_mode": "queue", "reassign_after": "15m", "retention": 30}), http.StatusOK)
	org := want(t, e.get("/admin/orgs/shop", svc), http.StatusOK).obj("org")
	if org["name"] != "Shop" || org["offline_mode"] != "queue" || org["reassign_after"] != "15m0s" || org["retention"] != float64(30) {
		t.Fatalf("org = %v", org)
	}
	if r := e.get("/admin/orgs/nowhere", token(t, auth.Service, "nowhere", "s")); r.status != http.StatusNotFound || r.errCode() != "org_not_found" {
		t.Fatalf("unknown org: %d %s", r.status, r.raw)
	}
	for _, tok := range []string{token(t, auth.Service, "other", "s"), token(t, auth.Manager, "shop", "m1")} {
		for _, path := range []string{"/admin/orgs/shop", "/admin/orgs/shop/managers", "/admin/orgs/shop/duty"} {
			if r := e.get(path, tok); r.status != http.StatusForbidden {
				t.Errorf("GET %s by a non-administrator: %d %s", path, r.status, r.raw)
			}
		}
	}

	want(t, e.call(http.MethodPut, "/admin/orgs/shop/managers/m1", svc, map[string]any{"name": "Ann", "capacity": 2}), http.StatusOK)
	want(t, e.call(http.MethodPut, "/admin/orgs/shop/managers/m2", svc, map[string]any{"name": "Bob"}), http.StatusOK)
	goOnDuty(e, "shop", "m1")
	openAs(t, e, "shop", "v1", http.StatusCreated)
	managers := want(t, e.get("/admin/orgs/shop/managers", svc), http.StatusOK).body["managers"].([]any)
	got := map[string]map[string]any{}
	for _, m := range managers {
		got[fmt.Sprint(m.(map[string]any)["id"])] = m.(map[string]any)
	}
	if m := got["m1"]; len(got) != 2 || m["name"] != "Ann" || m["on_duty"] != true || m["open_conversations"] != float64(1) || m["capacity"] != float64(2) {
		t.Fatalf("managers = %v", managers)
	}
	if m := got["m2"]; m["on_duty"] != false || m["open_conversations"] != float64(0) || m["registered"] != true {
		t.Fatalf("m2 = %v", m)
	}
	if on := want(t, e.get("/admin/orgs/shop/duty", svc), http.StatusOK).body["on_duty"]; fmt.Sprint(on) != "[m1]" {
		t.Fatalf("admin duty = %v", on)
	}
	if on := want(t, e.get("/chat/duty", token(t, auth.Manager, "shop", "m2")), http.StatusOK).body["on_duty"]; fmt.Sprint(on) != "[m1]" {
		t.Fatalf("chat duty = %v", on)
	}
	if on := want(t, e.get("/chat/duty", token(t, auth.Service, "other", "s")), http.StatusOK).body["on_duty"]; fmt.Sprint(on) != "[]" {
		t.Fatalf("another organisation's duty = %v", on)
	}
	if r := e.get("/chat/duty", token(t, auth.Visitor, "shop", "v1")); r.status != http.StatusForbidden {
		t.Fatalf("visitor reading duty: %d %s", r.status, r.raw)
	}

	want(t, e.call(http.MethodDelete, "/admin/orgs/shop/managers/m2", svc, nil), http.StatusNoContent)
	if r := e.call(http.MethodDelete, "/admin/orgs/shop/managers/m2", svc, nil); r.status != http.StatusNotFound || r.errCode() != "manager_not_found" {
		t.Fatalf("deleting again: %d %s", r.status, r.raw)
	}
	managers = want(t, e.get("/admin/orgs/shop/managers", svc), http.StatusOK).body["managers"].([]any)
	if len(managers) != 1 || managers[0].(map[string]any)["id"] != "m1" {
		t.Fatalf("managers after deleting m2 = %v", managers)
	}
}

// TestDeskDoors: every desk route sits behind the same doors as the others — a token, the
// browser origins (server-wide, then the caller's organisation's), CORS, and method errors.
func TestDeskDoors(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.HTTP.AllowedOrigins = []string{"https://shop.example"}
	})
	svc := token(t, auth.Service, "shop", "backoffice")
	want(t, e.call(http.MethodPut, "/admin/orgs/other", token(t, auth.Service, "other", "s"), map[string]any{"allowed_origins": []string{"https://other.example"}}), http.StatusOK)
	goOnDuty(e, "shop", "m1")
	conv := openAs(t, e, "shop", "v1", http.StatusCreated)
	routes := []struct{ method, path string }{
		{http.MethodGet, "/chat/conversations"},
		{http.MethodGet, "/chat/conversation/" + conv},
		{http.MethodGet, "/chat/conversation/" + conv + "/messages"},
		{http.MethodPost, "/chat/conversation/" + conv + "/transfer"},
		{http.MethodPost, "/chat/conversation/" + conv + "/claim"},
		{http.MethodGet, "/chat/duty"},
		{http.MethodGet, "/admin/orgs/shop"},
		{http.MethodGet, "/admin/orgs/shop/managers"},
		{http.MethodDelete, "/admin/orgs/shop/managers/m9"},
		{http.MethodGet, "/admin/orgs/shop/duty"},
		{http.MethodDelete, "/admin/orgs/shop/visitors/v9"},
	}
	for _, rt := range routes {
		name := rt.method + " " + rt.path
		if r := e.call(rt.method, rt.path, "", nil); r.status != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d %s", name, r.status, r.raw)
		}
		if r := e.call(rt.method, rt.path, svc, nil, "Origin", "https://evil.example"); r.status != http.StatusForbidden || r.errCode() != "origin_not_allowed" {
			t.Errorf("%s from a foreign origin: %d %s", name, r.status, r.raw)
		}
		if r := e.call(rt.method, rt.path, svc, nil, "Origin", "https://other.example"); r.status != http.StatusForbidden || r.errCode() != "origin_not_allowed" {
			t.Errorf("%s from another organisation's origin: %d %s", name, r.status, r.raw)
		}
		r := e.call(rt.method, rt.path, svc, nil, "Origin", "https://shop.example")
		if r.status == http.StatusUnauthorized || r.errCode() == "origin_not_allowed" || r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
			r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s from the shop's origin: %d %v %s", name, r.status, r.header, r.raw)
		}
		pre := e.call(http.MethodOptions, rt.path, "", nil, "Origin", "https://shop.example", "Access-Control-Request-Method", rt.method)
		if pre.status != http.StatusNoContent || !strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), rt.method) {
			t.Errorf("preflight of %s: %d %v", name, pre.status, pre.header)
		}
		if r := e.call(http.MethodPatch, rt.path, svc, nil); r.status != http.StatusMethodNotAllowed || r.errCode() != "method_not_allowed" {
			t.Errorf("PATCH %s: %d %s", rt.path, r.status, r.raw)
		}
	}
}
