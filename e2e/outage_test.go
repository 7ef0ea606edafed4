package e2e

import (
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// TestStoreOutage: MongoDB goes away. Requests fail fast with 503 and a clear error, /readyz
// turns red, real-time traffic that needs no store keeps flowing, nothing piles up, and
// everything recovers by itself when the store returns.
func TestStoreOutage(t *testing.T) {
	db := newFerret(t)
	var logs syncBuffer
	e := startLogged(t, testConfig(t, func(c *config.Config) {
		c.Mongo.URI, c.Mongo.Database, c.Mongo.Timeout = db.uri(), "outage", time.Second
	}), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("server log:\n" + logs.String())
		}
	})
	mTok, vTok := token(t, auth.Manager, "shop", "m1"), token(t, auth.Visitor, "shop", "v1")
	conv := openConversation(t, e, mTok, "v1")["id"].(string)
	post := "/chat/conversation/" + conv
	want(t, e.post(post, vTok, map[string]any{"content": "before"}), http.StatusCreated)
	typing := "orgs/shop/conversations/" + conv + "/typing"
	visitor := e.mustConnect(vTok, "v1")
	visitor.mustSubscribe(typing)
	manager := e.mustConnect(mTok, "m1")
	baseline := runtime.NumGoroutine()

	db.stop()
	var wg sync.WaitGroup
	codes := make([]string, 20)
	took := make([]time.Duration, 20)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			r := e.post(post, vTok, map[string]any{"content": "during"})
			codes[i], took[i] = r.errCode(), time.Since(start)
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("post during the outage: %d %s", r.status, r.raw)
			}
		}(i)
	}
	wg.Wait()
	for i := range codes {
		if codes[i] != "store_unavailable" || took[i] > 5*time.Second {
			t.Fatalf("post during the outage: %q after %s; want store_unavailable within the store timeout (1s) and some slack", codes[i], took[i])
		}
	}
	if r := e.call(http.MethodGet, "/readyz", "", nil); r.status != http.StatusServiceUnavailable || r.obj("checks")["store"] == "ok" {
		t.Fatalf("/readyz during the outage: %d %s", r.status, r.raw)
	}
	// A Faye subscribe the ACL cannot decide (a conversation it must look up) is a retryable
	// server error, not a refusal, and the outage is logged.
	fayeID := e.handshake(vTok)
	_, replies, _ := e.bayeux(`[{"channel":"/meta/subscribe","clientId":"` + fayeID + `","subscription":"/conversations/unseen","ext":{"token":"` + vTok + `"}}]`)
	if len(replies) != 1 || field(replies[0], "error") != `"500:/conversations/unseen:Internal server error"` || field(replies[0], "advice") != `{"interval":0,"reconnect":"retry","timeout":45000}` {
		t.Fatalf("Faye subscribe during the outage: %v", replies)
	}
	if !strings.Contains(logs.String(), `msg="faye: subscribe failed" component=faye channel=/conversations/unseen err="store_unavailable: `) {
		t.Fatal("the Faye subscribe that failed for the outage was not logged")
	}
	// Real-time delivery that needs no store goes on.
	if pt := manager.c.Publish(typing, 1, false, `{"typing":true}`); !pt.WaitTimeout(5*time.Second) || pt.Error() != nil {
		t.Fatal("typing publish during the outage failed")
	}
	if d := visitor.next(); d.topic != typing {
		t.Fatalf("during the outage the visitor got %+v", d)
	}
	// Failed requests leave nothing behind (a few goroutines of the driver's reconnection
	// attempts may come and go).
	waitFor(t, "goroutines to settle after the failed requests", func() bool { return runtime.NumGoroutine() < baseline+30 })

	db.start()
	waitFor(t, "/readyz to turn green again", func() bool { return e.call(http.MethodGet, "/readyz", "", nil).status == http.StatusOK })
	want(t, e.post(post, vTok, map[string]any{"content": "after"}), http.StatusCreated)
	hist := want(t, e.post(post+"/messages", vTok, nil), http.StatusOK)
	if msgs := hist.body["messages"].([]any); len(msgs) != 2 || msgs[0].(map[string]any)["content"] != "after" {
		t.Fatalf("history after the outage: %v (nothing of the failed posts may be stored)", msgs)
	}
}

// TestGracefulShutdownAdvisesFayeClients: on shutdown, a held long-poll connect is answered at
// once, advising a reconnect after a second, and a websocket is closed — the official client
// recovers from both (e2e/node faye.test.mjs, restart).
func TestGracefulShutdownAdvisesFayeClients(t *testing.T) {
	e := start(t) // faye.timeout 45s: anything quicker than that is the shutdown's doing
	tok := token(t, auth.Visitor, "shop", "v1")
	cid := e.handshake(tok)
	ext := `,"ext":{"token":"` + tok + `"}` // clients send their token on every message
	polled := make(chan []map[string]any, 1)
	go func() {
		_, r, _ := e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"long-polling"}]`)
		polled <- r
	}()
	ws := e.dialFaye()
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"`+tok+`"}}]`))
	var hs []map[string]any
	if err := ws.ReadJSON(&hs); err != nil {
		t.Fatal(err)
	}
	wsCid := hs[0]["clientId"].(string)
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/connect","clientId":"`+wsCid+`"`+ext+`,"connectionType":"websocket"}]`))
	time.Sleep(300 * time.Millisecond) // both connects are held now

	start := time.Now()
	e.stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %s", took)
	}
	select {
	case r := <-polled:
		if len(r) != 1 || r[0]["successful"] != true || field(r[0], "advice") != `{"interval":1000,"reconnect":"retry","timeout":45000}` {
			t.Errorf("held long-poll at shutdown: %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held long-poll was not answered at shutdown")
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ws.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("socket at shutdown: %v, want it closed", err)
	}
}
