package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// TestMQTTACLAttacks tries what a hostile MQTT client would.
func TestMQTTACLAttacks(t *testing.T) {
	e := start(t)
	m := e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	conv := openConversation(t, e, token(t, auth.Visitor, "shop", "v1"), "v1")
	m.next()
	convID := fmt.Sprint(conv["id"])
	ownTopic := "orgs/shop/conversations/" + convID

	v2 := e.mustConnect(token(t, auth.Visitor, "shop", "v2"), "v2")
	for _, f := range []string{
		"orgs/shop/service/+", "orgs/shop/#", "orgs/shop/+", "#", "+", "$SYS/#", "$SYS/broker/clients/connected",
		"orgs/shop/service/v1", "orgs/shop/notifications/v1", ownTopic, ownTopic + "/+", ownTopic + "/typing",
		"orgs/other/service/v2", "orgs/+/service/v2", "orgs/shop/conversations/+", "orgs/shop/conversations/nope",
		"orgs/shop/service/v2/#", "other/shop/service/v2",
	} {
		if code := v2.subscribe(f); code != 0x80 {
			t.Errorf("visitor v2 subscribing %s: SUBACK 0x%x, want 0x80", f, code)
		}
	}
	v2.mustSubscribe("orgs/shop/service/v2") // its own channel still works

	// A raw publish into a conversation reaches nobody and stores nothing. At QoS 0 it is
	// dropped silently; at QoS 1 an MQTT 3.1.1 client, which has no negative PUBACK, is
	// disconnected.
	v1 := e.mustConnect(token(t, auth.Visitor, "shop", "v1"), "v1")
	v1.mustSubscribe(ownTopic)
	m.mustSubscribe(ownTopic)
	for _, c := range []*client{v1, m} {
		if pt := c.c.Publish(ownTopic, 0, false, `{"entity":"message","message":{"content":"forged"}}`); !pt.WaitTimeout(5 * time.Second) {
			t.Fatal("publish timed out")
		}
	}
	intruder := e.mustConnect(token(t, auth.Visitor, "shop", "v3"), "v3")
	intruder.c.Publish(ownTopic, 1, false, `{"entity":"message"}`)
	waitFor(t, "a refused QoS 1 publish to close the 3.1.1 connection", func() bool { return !intruder.c.IsConnectionOpen() })
	// Typing is the one sub-channel participants publish to: it proves deliveries flow, so the
	// silence on the conversation channel above is a refusal.
	v1.mustSubscribe(ownTopic + "/typing")
	if pt := m.c.Publish(ownTopic+"/typing", 1, false, `{"typing":true}`); !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
		t.Fatal("typing publish failed")
	}
	if d := v1.next(); d.topic != ownTopic+"/typing" {
		t.Fatalf("visitor got %+v before the typing event: a forged message was delivered", d)
	}
	m.none(200 * time.Millisecond)
	hist := want(t, e.post("/chat/conversation/"+convID+"/messages", token(t, auth.Manager, "shop", "m1"), nil), http.StatusOK)
	if msgs := hist.body["messages"].([]any); len(msgs) != 0 {
		t.Fatalf("a raw publish created messages: %v", msgs)
	}
}

func TestMQTTConnectAttacks(t *testing.T) {
	e := start(t)
	forged, _ := auth.Issue([]byte("another-secret-another-secret-xx"), auth.Identity{Subject: "m1", Role: auth.Manager, Org: "shop"}, time.Hour, time.Now())
	expired, _ := auth.Issue([]byte(secret), auth.Identity{Subject: "m1", Role: auth.Manager, Org: "shop"}, time.Second, time.Now().Add(-time.Hour))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"m1","role":"manager","org":"shop","exp":%d}`, time.Now().Add(time.Hour).Unix()))) + "."
	for name, tok := range map[string]string{"forged": forged, "expired": expired, "alg none": none, "empty": "", "garbage": "x.y.z"} {
		if _, err := e.connect(tok, "attacker-"+strings.ReplaceAll(name, " ", "-")); err == nil {
			t.Errorf("connect with a %s token succeeded", name)
		}
	}
	// A client id held by a manager cannot be taken over by a visitor.
	m := e.onDuty(token(t, auth.Manager, "shop", "m1"), "shared-id")
	if _, err := e.connect(token(t, auth.Visitor, "shop", "v1"), "shared-id"); err == nil {
		t.Fatal("a visitor took over a manager's client id")
	}
	// The manager's connection survived: it still gets its traffic.
	want(t, e.post("/chat/service/v9", token(t, auth.Visitor, "shop", "v9"), nil), http.StatusCreated)
	if d := m.next(); d.topic != "orgs/shop/service/v9" {
		t.Fatalf("manager got %+v", d)
	}
	// The same identity may reconnect with its id (a session takeover is legitimate).
	e.mustConnect(token(t, auth.Manager, "shop", "m1"), "shared-id")
}

// TestRESTBadInput: hostile or broken requests get the JSON error shape with the right status,
// never a 500.
func TestRESTBadInput(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Limits.HTTPBodyBytes = 4096
		c.Limits.ContentChars = 100
		c.HTTP.AllowedOrigins = []string{"https://shop.example"}
	})
	vTok, mTok := token(t, auth.Visitor, "shop", "v1"), token(t, auth.Manager, "shop", "m1")
	e.onDuty(mTok, "m1")
	convID := fmt.Sprint(openConversation(t, e, vTok, "v1")["id"])
	post := "/chat/conversation/" + convID
	algNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"v1","role":"visitor","org":"shop","exp":%d}`, time.Now().Add(time.Hour).Unix()))) + "."
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "v1", "role": "visitor", "org": "shop", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString([]byte(secret))

	cases := []struct {
		name    string
		method  string
		path    string
		tok     string
		body    any
		headers []string
		status  int
		code    string
	}{
		{"no token", "POST", post, "", map[string]any{"content": "x"}, nil, 401, "unauthorized"},
		{"expired token", "POST", post, expired, map[string]any{"content": "x"}, nil, 401, "unauthorized"},
		{"alg none token", "POST", post, algNone, map[string]any{"content": "x"}, nil, 401, "unauthorized"},
		{"basic auth", "POST", post, "", map[string]any{"content": "x"}, []string{"Authorization", "Basic dTpw"}, 401, "unauthorized"},
		{"malformed JSON", "POST", post, vTok, []byte(`{"content":`), nil, 400, "invalid_json"},
		{"JSON array", "POST", post, vTok, []byte(`["content"]`), nil, 400, "invalid_json"},
		{"content of wrong type", "POST", post, vTok, map[string]any{"content": 42.5e300}, nil, 400, "invalid_content"},
		{"content object", "POST", post, vTok, map[string]any{"content": map[string]any{"a": 1}}, nil, 400, "invalid_content"},
		{"content array", "POST", post, vTok, map[string]any{"content": []string{"hi"}}, nil, 400, "invalid_content"},
		{"content boolean", "POST", post, vTok, map[string]any{"content": true}, nil, 400, "invalid_content"},
		{"content null", "POST", post, vTok, map[string]any{"content": nil}, nil, 400, "invalid_content"},
		{"numeric-looking form content", "POST", post, vTok, "content=42", nil, 201, ""},
		{"empty content", "POST", post, vTok, map[string]any{"content": ""}, nil, 400, "invalid_content"},
		{"missing content", "POST", post, vTok, map[string]any{}, nil, 400, "invalid_content"},
		{"invalid UTF-8 JSON", "POST", post, vTok, []byte("{\"content\":\"a\xff\"}"), nil, 400, "invalid_encoding"},
		{"invalid UTF-8 form", "POST", post, vTok, "content=a%FF", nil, 400, "invalid_encoding"},
		{"too long content", "POST", post, vTok, map[string]any{"content": strings.Repeat("x", 101)}, nil, 400, "content_too_long"},
		{"oversized body", "POST", post, vTok, map[string]any{"content": strings.Repeat("x", 5000)}, nil, 413, "payload_too_large"},
		{"unsupported type", "POST", post, vTok, []byte(`<xml/>`), []string{"Content-Type", "application/xml"}, 400, "unsupported_media_type"},
		{"sender contradicts token", "POST", post, vTok, map[string]any{"content": "x", "sender": map[string]string{"type": "manager", "id": "m1"}}, nil, 403, "sender_mismatch"},
		{"bad sender type", "POST", post, vTok, map[string]any{"content": "x", "sender": map[string]string{"type": "root", "id": "v1"}}, nil, 400, "invalid_sender"},
		{"unknown conversation", "POST", "/chat/conversation/nope", vTok, map[string]any{"content": "x"}, nil, 404, "conversation_not_found"},
		{"visitor into another's conversation", "POST", post, token(t, auth.Visitor, "shop", "v2"), map[string]any{"content": "x"}, nil, 403, "forbidden"},
		{"bad visitor id", "POST", "/chat/service/v%201", vTok, nil, nil, 400, "invalid_visitor_id"},
		{"visitor opens another's", "POST", "/chat/service/v2", vTok, nil, nil, 403, "forbidden"},
		{"negative count", "POST", post + "/messages", vTok, map[string]any{"count": -5}, nil, 400, "invalid_count"},
		{"count not a number", "POST", post + "/messages", vTok, map[string]any{"count": "ten"}, nil, 400, "invalid_count"},
		{"unknown since_id", "POST", post + "/messages", vTok, map[string]any{"since_id": "nope"}, nil, 404, "message_not_found"},
		{"mark unknown message", "POST", post + "/message/nope/mark_read", mTok, nil, nil, 404, "message_not_found"},
		{"notification by a visitor", "POST", "/chat/notifications/v1", vTok, map[string]any{"notification": map[string]any{}}, nil, 403, "forbidden"},
		{"notification not an object", "POST", "/chat/notifications/v1", token(t, auth.Service, "shop", "s"), map[string]any{"notification": "x"}, nil, 400, "invalid_notification"},
		{"admin by a manager", "PUT", "/admin/orgs/shop", mTok, map[string]any{"name": "x"}, nil, 403, "forbidden"},
		{"admin of another org", "PUT", "/admin/orgs/other", token(t, auth.Service, "shop", "s"), map[string]any{"name": "x"}, nil, 403, "forbidden"},
		{"origin not allowed", "POST", post, vTok, map[string]any{"content": "x"}, []string{"Origin", "https://evil.example"}, 403, "origin_not_allowed"},
		{"unknown endpoint", "POST", "/chat/nothing", vTok, nil, nil, 404, "not_found"},
		{"wrong method", "DELETE", post, vTok, nil, nil, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		r := e.call(tc.method, tc.path, tc.tok, tc.body, tc.headers...)
		if r.status != tc.status || r.errCode() != tc.code {
			t.Errorf("%s: %d %s; want %d %q", tc.name, r.status, r.raw, tc.status, tc.code)
		}
		if r.status >= 400 && (r.header.Get("Content-Type") != "application/json" || r.obj("error")["message"] == "") {
			t.Errorf("%s: error reply not in the JSON shape: %s %s", tc.name, r.header.Get("Content-Type"), r.raw)
		}
	}
}

func TestCORS(t *testing.T) {
	e := start(t, func(c *config.Config) { c.HTTP.AllowedOrigins = []string{"https://shop.example"} })
	r := e.call(http.MethodOptions, "/chat/service/v1", "", nil,
		"Origin", "https://shop.example", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	r = e.call(http.MethodPost, "/chat/service/v1", token(t, auth.Visitor, "shop", "v1"), nil, "Origin", "https://shop.example")
	if r.header.Get("Access-Control-Allow-Origin") != "https://shop.example" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("CORS reply headers: %v", r.header)
	}
	if r = e.call(http.MethodOptions, "/chat/service/v1", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"); r.status != http.StatusForbidden {
		t.Fatalf("preflight from a foreign origin: %d", r.status)
	}
}

// syncBuffer is a log sink the server writes to from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTokensNeverLogged drives every door with good, forged and expired tokens while the
// server logs at debug level (the broker's own logs included), then searches the log for
// any of them.
func TestTokensNeverLogged(t *testing.T) {
	var logs syncBuffer
	e := startLogged(t, testConfig(t), slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	good := token(t, auth.Manager, "shop", "m1")
	expired := token(t, auth.Manager, "shop", "m1", -2*time.Hour)
	forged, _ := auth.Issue([]byte("another-secret-another-secret-xx"), auth.Identity{Subject: "v1", Role: auth.Visitor, Org: "shop"}, time.Hour, time.Now())
	tokens := map[string]string{"good": good, "expired": expired, "forged": forged}

	m := e.onDuty(good, "m1")
	m.subscribe("orgs/other/#")
	for _, tok := range []string{expired, forged} {
		_, _ = e.connect(tok, "bad")
		e.post("/chat/service/v1", tok, nil)
		e.bayeux(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"` + tok + `"}}]`)
	}
	want(t, e.post("/chat/service/v1", token(t, auth.Visitor, "shop", "v1"), nil), http.StatusCreated)
	cid := e.handshake(good)
	e.bayeux(`[{"channel":"/meta/subscribe","clientId":"` + cid + `","subscription":"/**","ext":{"token":"` + forged + `"}}]`)
	e.bayeux(`[{"channel":"/conversations/x","clientId":"` + cid + `","data":1,"ext":{"token":"` + good + `"}}]`)
	e.stop()

	out := logs.String()
	if len(out) < 1000 {
		t.Fatalf("too little was logged to prove anything: %q", out)
	}
	for name, tok := range tokens {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(out, tok) || strings.Contains(out, sig) {
			t.Errorf("the %s token appears in the logs", name)
		}
	}
}

// TestOriginsPerOrganisation: an organisation's own sites may call the server for it, and
// only for it; the list survives a restart.
func TestOriginsPerOrganisation(t *testing.T) {
	e := fayeEnv(t)
	admin := token(t, auth.Service, "A", "admin")
	want(t, e.call(http.MethodPut, "/admin/orgs/A", admin, map[string]any{"name": "A", "allowed_origins": []string{"https://shop-a.example"}}), http.StatusOK)
	if r := e.call(http.MethodPut, "/admin/orgs/A", admin, map[string]any{"allowed_origins": []string{"javascript:alert(1)"}}); r.errCode() != "invalid_allowed_origins" {
		t.Fatalf("a bad origin: %s", r.raw)
	}
	check := func(e *env) {
		t.Helper()
		shopA := []string{"Origin", "https://shop-a.example"}
		// Before the organisation is known, any organisation's origin passes the preflight.
		if r := e.call(http.MethodOptions, "/chat/service/v1", "", nil, "Origin", "https://shop-a.example", "Access-Control-Request-Method", "POST"); r.status != http.StatusNoContent {
			t.Errorf("preflight from A's site: %d", r.status)
		}
		if r := e.call(http.MethodOptions, "/chat/service/v1", "", nil, "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"); r.status != http.StatusForbidden {
			t.Errorf("preflight from an unknown site: %d", r.status)
		}
		// Once it is: A's visitor from A's site yes; B's visitor from A's site no.
		if r := e.call(http.MethodPost, "/chat/notifications/v1", admin, map[string]any{"notification": map[string]any{}}, shopA...); r.status != http.StatusCreated {
			t.Errorf("A from A's site: %d %s", r.status, r.raw)
		}
		if r := e.call(http.MethodPost, "/chat/notifications/v1", token(t, auth.Service, "B", "admin"), map[string]any{"notification": map[string]any{}}, shopA...); r.status != http.StatusForbidden || r.errCode() != "origin_not_allowed" {
			t.Errorf("B from A's site: %d %s", r.status, r.raw)
		}
		hs := func(tok string) map[string]any {
			_, r, _ := e.bayeux(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"`+tok+`"}}]`, shopA...)
			return r[0]
		}
		if r := hs(token(t, auth.Visitor, "A", "v1")); r["successful"] != true {
			t.Errorf("Faye handshake of A from A's site: %v", r)
		}
		if r := hs(token(t, auth.Visitor, "B", "v1")); r["error"] != "403::Forbidden origin" {
			t.Errorf("Faye handshake of B from A's site: %v", r)
		}
	}
	check(e)
	check(e.restart())
}
