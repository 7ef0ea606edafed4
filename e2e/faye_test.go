package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	fayeclient "github.com/convead/chat-server/faye/client"
)

// fayeEnv starts a node with short Faye timings so holds and expiries are quick to observe.
func fayeEnv(t *testing.T, opts ...func(*config.Config)) *env {
	return start(t, append([]func(*config.Config){func(c *config.Config) {
		c.Faye.Timeout, c.Faye.Ping, c.Faye.IdleTimeout = 2*time.Second, 500*time.Millisecond, 3*time.Second
	}}, opts...)...)
}

// bayeux posts a batch (JSON unless headers set another Content-Type) and returns the decoded
// replies (nil when the body is not JSON).
func (e *env) bayeux(body string, headers ...string) (int, []map[string]any, http.Header) {
	e.t.Helper()
	r := e.call(http.MethodPost, "/faye", "", []byte(body), headers...)
	var out []map[string]any
	_ = json.Unmarshal([]byte(r.raw), &out)
	return r.status, out, r.header
}

// dialFaye opens a websocket to the Faye endpoint; the test closes it when it ends.
func (e *env) dialFaye() *websocket.Conn {
	e.t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(e.base, "http", "ws", 1)+"/faye", nil)
	if err != nil {
		e.t.Fatalf("dial the Faye websocket: %v", err)
	}
	e.t.Cleanup(func() { ws.Close() })
	return ws
}

// wsCall sends one Bayeux batch over ws and returns the next frame's messages (nil when it is
// not JSON).
func wsCall(t testing.TB, ws *websocket.Conn, batch string) []map[string]any {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, []byte(batch)); err != nil {
		t.Fatalf("write %s: %v", batch, err)
	}
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read the reply to %s: %v", batch, err)
	}
	var f []map[string]any
	_ = json.Unmarshal(data, &f)
	return f
}

func (e *env) handshake(tok string) string {
	e.t.Helper()
	ext := ""
	if tok != "" {
		ext = `,"ext":{"token":"` + tok + `"}`
	}
	_, r, _ := e.bayeux(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling","websocket"],"id":"1"` + ext + `}]`)
	if len(r) != 1 || r[0]["successful"] != true {
		e.t.Fatalf("handshake: %v", r)
	}
	return r[0]["clientId"].(string)
}

func field(r map[string]any, k string) string {
	if v, ok := r[k]; ok {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return "-"
}

func TestFayeHandshake(t *testing.T) {
	e := fayeEnv(t)
	// JSON batch, form message=, a single object, and any path under the mount.
	for _, req := range []struct{ body, ctype string }{
		{`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket","eventsource","long-polling","cross-origin-long-polling","callback-polling"],"id":"1"}]`, "application/json"},
		{"message=" + url.QueryEscape(`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"x"}`), "application/x-www-form-urlencoded"},
		{"message=" + url.QueryEscape(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":42}]`), "text/plain;charset=UTF-8"},
	} {
		status, r, h := e.bayeux(req.body, "Content-Type", req.ctype)
		if status != 200 || len(r) != 1 || r[0]["successful"] != true || r[0]["version"] != "1.0" || len(r[0]["clientId"].(string)) != 31 {
			t.Fatalf("handshake %s: %d %v", req.body, status, r)
		}
		if field(r[0], "advice") != `{"interval":0,"reconnect":"retry","timeout":2000}` {
			t.Errorf("advice = %s", field(r[0], "advice"))
		}
		if h.Get("Content-Type") != "application/json; charset=utf-8" || h.Get("Cache-Control") != "no-cache, no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers = %v", h)
		}
	}
	resp, err := http.Post(e.base+"/faye/some/sub/path", "application/json", strings.NewReader(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("handshake under the mount: %v %v", resp, err)
	}
	resp.Body.Close()

	errs := []struct{ body, err, reconnect string }{
		{`{"channel":"/meta/handshake","supportedConnectionTypes":["long-polling"],"id":"2"}`, "402:version:Missing required parameter", "handshake"},
		{`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["iframe","flash"],"id":"3"}`, "301:iframe,flash:Connection types not supported", "handshake"},
		{`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":"long-polling"}`, "301:long-polling:Connection types not supported", "handshake"},
		{`{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"ext":{"token":"forged"}}`, "401::Authentication failed", "none"},
	}
	for _, tc := range errs {
		_, r, _ := e.bayeux(tc.body)
		if len(r) != 1 || r[0]["error"] != tc.err || r[0]["successful"] != false || r[0]["advice"].(map[string]any)["reconnect"] != tc.reconnect || r[0]["clientId"] != nil {
			t.Errorf("%s: %v", tc.body, r)
		}
	}
	for _, bad := range []struct{ method, body, ctype string }{
		{"POST", `[ }`, "application/json"}, {"POST", `1`, "application/json"},
		{"POST", `foo=bar`, "application/x-www-form-urlencoded"}, {"PUT", `x`, "application/x-www-form-urlencoded"},
	} {
		req, _ := http.NewRequest(bad.method, e.base+"/faye", strings.NewReader(bad.body))
		req.Header.Set("Content-Type", bad.ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || string(body) != "Bad request" {
			t.Errorf("%s %q: %d %q", bad.method, bad.body, resp.StatusCode, body)
		}
	}
}

func TestFayeMetaMatrix(t *testing.T) {
	e := fayeEnv(t)
	vTok := token(t, auth.Visitor, "shop", "v1")
	cid := e.handshake(vTok)
	ext := `,"ext":{"token":"` + vTok + `"}` // clients send their token on every message
	_, r, _ := e.bayeux(`[
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/abc","id":"s1"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/*","id":"s2"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/**","id":"s3"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/meta/foo","id":"s4"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"foo","id":"s5"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/foo/*/bar","id":"s6"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":["/service/v1","/notifications/v1"],"id":"s7"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":["/service/v1","/service/x"],"id":"s8"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"id":"s9"},
 {"channel":"/meta/subscribe","clientId":"nosuchclient","subscription":"/a","id":"s10"},
 {"channel":"/meta/subscribe","subscription":"/a","id":"s11"},
 {"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/v1","id":"s12"},
 {"channel":"/meta/unsubscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/notifications/v1","id":"u1"},
 {"channel":"/meta/unsubscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/never-subscribed","id":"u3"},
 {"channel":"/meta/foo","clientId":"` + cid + `"` + ext + `,"id":"m1"},
 {"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"id":"c0"}
]`)
	want := map[string]string{
		"s1":  `false "/service/abc" "403:/service/abc:Forbidden channel"`,
		"s2":  `false "/service/*" "403:/service/*:Forbidden channel"`,
		"s3":  `false "/service/**" "403:/service/**:Forbidden channel"`,
		"s4":  `false "/meta/foo" "403:/meta/foo:Forbidden channel"`,
		"s5":  `false "foo" "405:foo:Invalid channel"`,
		"s6":  `false "/foo/*/bar" "405:/foo/*/bar:Invalid channel"`,
		"s7":  `true ["/service/v1","/notifications/v1"] -`,
		"s8":  `false ["/service/v1","/service/x"] "403:/service/x:Forbidden channel"`,
		"s9":  `false [] "402:subscription:Missing required parameter"`,
		"s10": `false "/a" "401:nosuchclient:Unknown client"`,
		"s11": `false "/a" "402:clientId:Missing required parameter"`,
		"s12": `true "/service/v1" -`,
		"u1":  `true "/notifications/v1" -`,
		"u3":  `true "/never-subscribed" -`,
		"m1":  `false - "403:/meta/foo:Forbidden channel"`,
		"c0":  `false - "402:connectionType:Missing required parameter"`,
	}
	if len(r) != len(want) {
		t.Fatalf("%d replies for %d messages: %v", len(r), len(want), r)
	}
	for _, reply := range r {
		id := reply["id"].(string)
		got := field(reply, "successful") + " " + field(reply, "subscription") + " " + field(reply, "error")
		if got != want[id] {
			t.Errorf("%s: %s, want %s", id, got, want[id])
		}
		if strings.HasPrefix(want[id], "true") && reply["clientId"] != cid {
			t.Errorf("%s: clientId %v", id, reply["clientId"])
		}
	}
	if r[len(r)-1]["id"] != "c0" {
		t.Error("the connect reply must come last")
	}

	_, r, _ = e.bayeux(`[
 {"channel":"/conversations/x/typing","clientId":"` + cid + `"` + ext + `,"data":{"hello":"x"},"id":"p1"},
 {"channel":"/foo/*","data":1,"id":"p2"},
 {"channel":"/foo","id":"p3"},
 {"channel":"/meta/foo","data":1,"id":"p4"},
 {"channel":"/anon","data":null,"id":"p6"},
 {"channel":"/bad channel","data":1,"id":"p7"},
 {}, null, {"id":"z"}
]`)
	pubs := map[string]string{
		"p1": `"403:/conversations/x/typing:Forbidden channel"`, "p2": `"405:/foo/*:Invalid channel"`,
		"p3": `"402:data:Missing required parameter"`, "p4": `"403:/meta/foo:Forbidden channel"`,
		"p6": `"403:/anon:Forbidden channel"`, "p7": `"405:/bad channel:Invalid channel"`,
		"-": `"402:data:Missing required parameter"`, "z": `"402:data:Missing required parameter"`,
	}
	if len(r) != 8 {
		t.Fatalf("publish replies: %v", r)
	}
	for _, reply := range r {
		id := "-"
		if s, ok := reply["id"].(string); ok {
			id = s
		}
		if got := field(reply, "error"); got != pubs[id] || reply["successful"] != false {
			t.Errorf("publish %s: %v, want %s", id, reply, pubs[id])
		}
	}

	// Connect errors, then disconnect twice.
	for body, wantErr := range map[string]string{
		`{"channel":"/meta/connect","clientId":"bogus","connectionType":"long-polling","id":"c2"}`:            "401:bogus:Unknown client",
		`{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"iframe","id":"c3"}`: "301:iframe:Connection types not supported",
		`{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"id":"c4"}`:                           "402:connectionType:Missing required parameter",
	} {
		_, r, _ := e.bayeux(body)
		if len(r) != 1 || r[0]["error"] != wantErr || field(r[0], "advice") != `{"reconnect":"handshake"}` || r[0]["clientId"] != nil {
			t.Errorf("%s: %v", body, r)
		}
	}
	_, r, _ = e.bayeux(`{"channel":"/meta/disconnect","clientId":"` + cid + `"` + ext + `,"id":"d1"}`)
	if len(r) != 1 || r[0]["successful"] != true || r[0]["clientId"] != cid {
		t.Errorf("disconnect: %v", r)
	}
	_, r, _ = e.bayeux(`{"channel":"/meta/disconnect","clientId":"` + cid + `"` + ext + `,"id":"d2"}`)
	if len(r) != 1 || r[0]["error"] != "401:"+cid+":Unknown client" || r[0]["clientId"] != nil {
		t.Errorf("second disconnect: %v", r)
	}
}

func TestFayeConnectHoldAndFlush(t *testing.T) {
	e := fayeEnv(t)
	mTok := token(t, auth.Manager, "shop", "m1")
	cid := e.handshake(mTok)
	ext := `,"ext":{"token":"` + mTok + `"}` // clients send their token on every message
	if _, r, _ := e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/*"}`); r[0]["successful"] != true {
		t.Fatalf("subscribe: %v", r)
	}
	connect := func(id, advice string) ([]map[string]any, time.Duration) {
		start := time.Now()
		_, r, _ := e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"long-polling","id":"` + id + `"` + advice + `}]`)
		return r, time.Since(start)
	}
	// advice.timeout 0 answers at once.
	if r, _ := connect("c1", `,"advice":{"timeout":0}`); len(r) != 1 || r[0]["successful"] != true {
		t.Fatalf("immediate connect: %v", r)
	}
	// Messages published while no connect is open are queued for the next one.
	want(t, e.post("/chat/service/v1", token(t, auth.Visitor, "shop", "v1"), nil), http.StatusCreated)
	r, _ := connect("c2", "")
	if len(r) != 2 || r[0]["id"] != "c2" || r[1]["channel"] != "/service/v1" || r[1]["data"].(map[string]any)["entity"] != "conversation" {
		t.Fatalf("connect with a queued message: %v", r)
	}
	if _, has := r[1]["clientId"]; has {
		t.Error("a delivery carries a clientId")
	}
	// A held connect is answered as soon as something is published.
	done := make(chan []map[string]any)
	go func() { r, _ := connect("c3", ""); done <- r }()
	time.Sleep(300 * time.Millisecond)
	want(t, e.post("/chat/service/v2", token(t, auth.Visitor, "shop", "v2"), nil), http.StatusCreated)
	select {
	case r := <-done:
		if len(r) != 2 || r[1]["channel"] != "/service/v2" {
			t.Fatalf("flushed connect: %v", r)
		}
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("a publish did not release the held connect before its timeout")
	}
	// With nothing published it is answered empty after the timeout (2s here).
	if r, took := connect("c4", ""); len(r) != 1 || took < 1500*time.Millisecond {
		t.Fatalf("held connect: %v after %s", r, took)
	}
}

func TestFayeSessionExpiry(t *testing.T) {
	e := fayeEnv(t)
	cid := e.handshake("")
	// Any request would keep the session alive, so look only once, after the idle timeout (3s)
	// and a collection pass (every 0.75s) have surely run.
	time.Sleep(5 * time.Second)
	_, r, _ := e.bayeux(`{"channel":"/meta/connect","clientId":"` + cid + `","connectionType":"long-polling","advice":{"timeout":0}}`)
	if r[0]["error"] != "401:"+cid+":Unknown client" || field(r[0], "advice") != `{"reconnect":"handshake"}` {
		t.Fatalf("connect of an expired client: %v", r)
	}
}

func TestFayeJSONPAndCORS(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) { c.HTTP.AllowedOrigins = []string{"http://shop.example"} })
	get := func(query string, headers ...string) (int, string, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, e.base+"/faye?"+query, nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	q := func(msg, cb string) string {
		v := url.Values{"message": {msg}}
		if cb != "" {
			v.Set("jsonp", cb)
		}
		return v.Encode()
	}
	status, body, h := get(q(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["callback-polling"],"id":"j2"}]`, ""), "Origin", "http://shop.example")
	if status != 200 || !strings.HasPrefix(body, "/**/jsonpcallback([{") || !strings.HasSuffix(body, "]);") {
		t.Fatalf("JSONP handshake: %d %s", status, body)
	}
	for k, v := range map[string]string{"Content-Type": "text/javascript; charset=utf-8", "Content-Disposition": "attachment; filename=f.txt",
		"X-Content-Type-Options": "nosniff", "Access-Control-Allow-Origin": "http://shop.example", "Access-Control-Allow-Credentials": "true"} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
	if status, body, _ := get(q(`[]`, "a.b.$c_1")); status != 200 || body != "/**/a.b.$c_1([]);" {
		t.Errorf("dotted callback: %d %s", status, body)
	}
	for _, cb := range []string{"42", "alert(1)", "a;b"} {
		if status, _, _ := get(q(`[]`, cb)); status != 400 {
			t.Errorf("callback %q: %d", cb, status)
		}
	}
	// U+2028 in delivered data is escaped in JSONP (raw in JSON it would end the script).
	sTok := token(t, auth.Service, "shop", "s")
	cid := e.handshake(sTok)
	ext := `,"ext":{"token":"` + sTok + `"}` // clients send their token on every message
	e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/x"}`)
	e.bayeux(`{"channel":"/x","clientId":"` + cid + `","data":"a` + "\u2028" + `b","ext":{"token":"` + sTok + `"}}`)
	_, body, _ = get(q(`[{"channel":"/meta/connect","clientId":"`+cid+`"`+ext+`,"connectionType":"callback-polling","advice":{"timeout":0},"id":"k"}]`, "cb"))
	if !strings.Contains(body, `{"channel":"/x","data":"a\u2028b"}`) || strings.Contains(body, "\u2028") {
		t.Errorf("JSONP delivery not escaped: %q", body)
	}

	// CORS: preflight for an allowed origin, refusal for another.
	req, _ := http.NewRequest(http.MethodOptions, e.base+"/faye", nil)
	req.Header.Set("Origin", "http://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://shop.example" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if status, _, _ := e.bayeux(`[]`, "Origin", "http://evil.example"); status != http.StatusForbidden {
		t.Errorf("POST from a foreign origin: %d", status)
	}
	status, r, h := e.bayeux("message="+url.QueryEscape(`[{"channel":"/meta/connect","clientId":"`+cid+`"`+ext+`,"connectionType":"cross-origin-long-polling","advice":{"timeout":0},"id":"o1"}]`),
		"Origin", "http://shop.example", "Content-Type", "text/plain;charset=UTF-8")
	if status != 200 || len(r) != 1 || r[0]["successful"] != true || h.Get("Access-Control-Allow-Origin") != "http://shop.example" {
		t.Errorf("cross-origin long-polling: %d %v %v", status, r, h)
	}
}

func TestFayeEventSource(t *testing.T) {
	e := fayeEnv(t)
	sTok := token(t, auth.Service, "shop", "s")
	cid := e.handshake(sTok)
	ext := `,"ext":{"token":"` + sTok + `"}` // clients send their token on every message
	e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/foo"}`)
	req, _ := http.NewRequest(http.MethodGet, e.base+"/faye/"+cid, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+sTok) // an EventSource GET carries no ext
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	_, r, _ := e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"eventsource","id":"2"}]`)
	if field(r[0], "advice") != `{"interval":2000,"reconnect":"retry","timeout":0}` {
		t.Errorf("eventsource connect advice: %v", r)
	}
	e.bayeux(`[{"channel":"/foo","data":{"n":1},"ext":{"token":"` + sTok + `"}},{"channel":"/foo","data":"line1\nline2","ext":{"token":"` + sTok + `"}}]`)
	lines := bufio.NewReader(resp.Body)
	var got []string
	for len(got) < 3 {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v (got %q)", err, got)
		}
		if line = strings.TrimRight(line, "\r\n"); line != "" && line != ":" {
			got = append(got, line)
		}
	}
	want := []string{"retry: 5000", `data: [{"channel":"/foo","data":{"n":1}}]`, `data: [{"channel":"/foo","data":"line1\nline2"}]`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("stream = %q, want %q", got, want)
	}
	req, _ = http.NewRequest(http.MethodGet, e.base+"/faye/unknownclient", nil)
	req.Header.Set("Accept", "text/event-stream")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("stream of an unknown client: %v %v", resp, err)
	}
}

func TestFayeWebSocketFrames(t *testing.T) {
	e := fayeEnv(t)
	sTok := token(t, auth.Service, "shop", "s")
	ws := e.dialFaye()
	pings := make(chan struct{}, 10)
	ws.SetPingHandler(func(string) error { pings <- struct{}{}; return nil })
	frames := make(chan []map[string]any, 20)
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				close(frames)
				return
			}
			var f []map[string]any
			_ = json.Unmarshal(data, &f)
			frames <- f
		}
	}()
	send := func(s string) {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	next := func() []map[string]any {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("socket closed")
			}
			return f
		case <-time.After(5 * time.Second):
			t.Fatal("no frame within 5s")
		}
		return nil
	}
	send(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1","ext":{"token":"` + sTok + `"}}]`)
	cid := next()[0]["clientId"].(string)
	ext := `,"ext":{"token":"` + sTok + `"}` // clients send their token on every message
	send(`[{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/foo","id":"2"}]`)
	if f := next(); f[0]["successful"] != true {
		t.Fatalf("subscribe: %v", f)
	}
	// Published before the socket is bound by a connect: queued, then pushed on connect.
	e.bayeux(`[{"channel":"/foo","data":{"n":"before-connect"},"ext":{"token":"` + sTok + `"},"id":"h1"}]`)
	send(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"websocket","id":"3"}]`)
	if f := next(); len(f) != 1 || f[0]["channel"] != "/foo" || f[0]["data"].(map[string]any)["n"] != "before-connect" {
		t.Fatalf("queued push: %v", f)
	}
	// While the connect is held, a publish is pushed at once, without the publisher's ext.
	e.bayeux(`[{"channel":"/foo","data":{"n":"pushed"},"ext":{"token":"` + sTok + `"},"id":"h2"}]`)
	if f := next(); f[0]["data"].(map[string]any)["n"] != "pushed" || f[0]["ext"] != nil {
		t.Fatalf("push: %v", f)
	}
	send(`[]`)
	if f := next(); len(f) != 0 {
		t.Fatalf("empty batch: %v", f)
	}
	send(`not json`)
	send(`42`)
	// The held connect is answered after the timeout (2s); pings come every 0.5s meanwhile.
	if f := next(); f[0]["id"] != "3" || f[0]["successful"] != true {
		t.Fatalf("held connect reply: %v", f)
	}
	select {
	case <-pings:
	case <-time.After(2 * time.Second):
		t.Fatal("no ping")
	}
	send(`[{"channel":"/meta/disconnect","clientId":"` + cid + `"` + ext + `,"id":"7"}]`)
	if f := next(); f[0]["successful"] != true {
		t.Fatalf("disconnect: %v", f)
	}
	for range frames { // drained until the server closes the socket
	}
}

func TestFayeClientJS(t *testing.T) {
	e := fayeEnv(t)
	resp, err := http.Get(e.base + "/faye/client.js")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != fayeclient.Script() {
		t.Errorf("unconfigured client.js is not the server's own client: %d %.80s", resp.StatusCode, body)
	}
	bundle := filepath.Join(t.TempDir(), "faye-browser-min.js")
	if err := os.WriteFile(bundle, []byte("var Faye={};"), 0o600); err != nil {
		t.Fatal(err)
	}
	e = fayeEnv(t, func(c *config.Config) { c.Faye.ClientJSPath = bundle })
	for _, path := range []string{"/faye/client.js", "/faye.js"} {
		resp, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != 200 || string(body) != "var Faye={};" || etag == "" || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, resp.Header)
		}
		req, _ := http.NewRequest(http.MethodGet, e.base+path, nil)
		req.Header.Set("If-None-Match", etag)
		resp, err = http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its ETag: %v %v", path, resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

// TestFayeAnonymousSwitch: without a token, a widget is a visitor of the configured
// organisation — the one whose channel it subscribes to first, and nothing more.
func TestFayeAnonymousSwitch(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) { c.Auth.AnonymousOrg = "shop" })
	e.onDuty(token(t, auth.Manager, "shop", "m1"), "m1")
	conv := openConversation(t, e, token(t, auth.Visitor, "shop", "v1"), "v1")
	other := openConversation(t, e, token(t, auth.Visitor, "shop", "v2"), "v2")

	cid := e.handshake("")
	sub := func(ch string) string {
		_, r, _ := e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid + `","subscription":"` + ch + `"}`)
		return field(r[0], "error")
	}
	for ch, wantErr := range map[string]string{
		"/service/*": `"403:/service/*:Forbidden channel"`,
		"/**":        `"403:/**:Forbidden channel"`,
	} {
		if got := sub(ch); got != wantErr {
			t.Errorf("anonymous subscribe %s: %s", ch, got)
		}
	}
	if got := sub("/service/v1"); got != "-" {
		t.Fatalf("anonymous subscribe /service/v1: %s", got)
	}
	for ch, wantErr := range map[string]string{
		"/conversations/" + conv["id"].(string):  "-",
		"/service/v2":                            `"403:/service/v2:Forbidden channel"`,
		"/conversations/" + other["id"].(string): `"403:/conversations/` + other["id"].(string) + `:Forbidden channel"`,
	} {
		if got := sub(ch); got != wantErr {
			t.Errorf("anonymous visitor v1 subscribe %s: %s, want %s", ch, got, wantErr)
		}
	}
	// Without the switch, a client with no token can subscribe to nothing.
	e2 := fayeEnv(t)
	cid2 := e2.handshake("")
	_, r, _ := e2.bayeux(`{"channel":"/meta/subscribe","clientId":"` + cid2 + `","subscription":"/service/v1"}`)
	if r[0]["error"] != "403::Authentication required" {
		t.Errorf("subscribe without a token: %v", r)
	}
}

// TestFayeManagerDuty: a manager on /service/* over a Faye websocket is on duty, and off duty
// as soon as the socket closes.
func TestFayeManagerDuty(t *testing.T) {
	e := fayeEnv(t)
	ws := e.dialFaye()
	mTok := token(t, auth.Manager, "shop", "m1")
	call := func(s string) []map[string]any { return wsCall(t, ws, s) }
	cid := call(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"` + mTok + `"}}]`)[0]["clientId"].(string)
	ext := `,"ext":{"token":"` + mTok + `"}` // clients send their token on every message
	call(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"websocket","advice":{"timeout":0}},{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/*"}]`)
	if r := e.post("/chat/service/v1", token(t, auth.Visitor, "shop", "v1"), nil); r.status != http.StatusCreated || r.obj("conversation")["manager_id"] != "m1" {
		t.Fatalf("open with a Faye manager on duty: %s", r.raw)
	}
	ws.Close()
	probe := 0
	waitFor(t, "the manager off duty after its socket closed", func() bool {
		probe++
		return e.post("/chat/service/"+fmt.Sprint("probe", probe), token(t, auth.Visitor, "shop", fmt.Sprint("probe", probe)), nil).status == http.StatusUnprocessableEntity
	})
}
