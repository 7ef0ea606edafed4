package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
)

// TestFayeRefusesInvalidUTF8: a publish with invalid UTF-8 anywhere (or an escaped lone
// surrogate, which a JavaScript subscriber would receive as one) is refused over every
// transport with a Bayeux error (a websocket frame of invalid bytes is closed with 1007), and the subscriber receives nothing of it: its next
// delivery is the valid publish that follows, and every frame it got is valid UTF-8.
func TestFayeRefusesInvalidUTF8(t *testing.T) {
	e := fayeEnv(t)
	sTok := token(t, auth.Service, "shop", "s")
	ext := `,"ext":{"token":"` + sTok + `"}`
	sub := e.dialFaye()
	hs := wsCall(t, sub, `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1"`+ext+`}]`)
	cid, _ := hs[0]["clientId"].(string)
	if r := wsCall(t, sub, `[{"channel":"/meta/subscribe","clientId":"`+cid+`","subscription":"/foo","id":"2"`+ext+`}]`); r[0]["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	if err := sub.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/connect","clientId":"`+cid+`","connectionType":"websocket","id":"3"`+ext+`}]`)); err != nil {
		t.Fatal(err)
	}
	pubCid := e.handshake(sTok)
	pub := e.dialFaye()
	publish := func(data string) string {
		return `[{"channel":"/foo","clientId":"` + pubCid + `","id":"p","data":` + data + ext + `}]`
	}
	bad := []string{"\"\xff\"", "{\"k\xed\xa0\x80\":1}", `["ok","\udc00"]`, `"\ud800x"`, `{"a":{"b":"\ud83d"}}`}
	for _, data := range bad {
		body := publish(data)
		transports := map[string]func() []map[string]any{
			"long-polling json": func() []map[string]any { _, r, _ := e.bayeux(body); return r },
			"long-polling form": func() []map[string]any {
				_, r, _ := e.bayeux("message="+url.QueryEscape(body), "Content-Type", "application/x-www-form-urlencoded")
				return r
			},
			"callback-polling": func() []map[string]any {
				raw := e.call(http.MethodGet, "/faye?jsonp=cb&message="+url.QueryEscape(body), "", nil).raw
				var r []map[string]any
				_ = json.Unmarshal([]byte(strings.TrimSuffix(strings.TrimPrefix(raw, "/**/cb("), ");")), &r)
				return r
			},
			"websocket": func() []map[string]any { return wsCall(t, pub, body) },
		}
		if !utf8.ValidString(body) {
			// Invalid bytes make the websocket text frame itself invalid: RFC 6455 closes
			// the connection with 1007 before Bayeux sees it.
			delete(transports, "websocket")
			ws := e.dialFaye()
			if err := ws.WriteMessage(websocket.TextMessage, []byte(body)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseInvalidFramePayloadData) {
				t.Errorf("websocket, data %q: %v, want close 1007", data, err)
			}
		}
		for name, send := range transports {
			if r := send(); len(r) != 1 || r[0]["successful"] != false || r[0]["error"] != "400::Invalid UTF-8" || r[0]["id"] != "p" {
				t.Errorf("%s, data %q: reply %v, want a 400 Invalid UTF-8 error", name, data, r)
			}
		}
	}
	if _, r, _ := e.bayeux(publish(`"fine \u00e9 \ud83d\ude00"`)); r[0]["successful"] != true {
		t.Fatalf("valid publish: %v", r)
	}
	_ = sub.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, frame, err := sub.ReadMessage()
		if err != nil {
			t.Fatalf("the subscriber never got the valid publish: %v", err)
		}
		if !utf8.Valid(frame) {
			t.Fatalf("the subscriber got invalid UTF-8: %q", frame)
		}
		var msgs []map[string]any
		if err := json.Unmarshal(frame, &msgs); err != nil {
			t.Fatalf("frame %q: %v", frame, err)
		}
		for _, m := range msgs {
			if m["channel"] != "/foo" {
				continue
			}
			if m["data"] != "fine \u00e9 \U0001F600" {
				t.Fatalf("the subscriber got a refused publish: %q", frame)
			}
			return
		}
	}
}
