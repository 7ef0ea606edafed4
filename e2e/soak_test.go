package e2e

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/server"
)

// TestSoak runs steady chat traffic with churning clients for CHAT_SOAK_DURATION (default 10s,
// the short version CI runs; scripts/soak.sh runs it for 10 minutes), then checks that
// nothing leaked: once every client has left, the server's goroutines, heap, Faye sessions,
// MQTT clients and managers on duty are back where they started.
//
// Each visitor worker loops: a Faye websocket client subscribes to its service channel, opens a
// chat (assigned to one of the MQTT managers on duty), subscribes to the conversation, posts,
// receives its messages live and the manager's answer (an MQTT post command), closes the
// conversation and leaves — then a new visitor takes its place.
func TestSoak(t *testing.T) {
	duration := 10 * time.Second
	if d := os.Getenv("CHAT_SOAK_DURATION"); d != "" {
		var err error
		if duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("CHAT_SOAK_DURATION: %v", err)
		}
	}
	workers := 40
	if duration >= time.Minute {
		workers = 400
	}
	e := start(t, func(c *config.Config) {
		c.Limits.PostsPerMinute, c.Limits.OpensPerMinutePerIP, c.Limits.OpensPerMinutePerVisitor = 0, 0, 0
		c.Limits.HandshakesPerMinutePerIP, c.Limits.ConnectionsPerIP, c.Limits.MQTTConnectsPerMinutePerIP = 0, 0, 0
		c.Faye.Timeout, c.Faye.Ping, c.Faye.IdleTimeout = 20*time.Second, 5*time.Second, 30*time.Second
	})
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapAlloc

	// Shops of 40 visitor workers each, with 4 managers on duty over MQTT who answer every
	// visitor message by the post command.
	orgs := max(1, workers/40)
	const managersPerOrg = 4
	var answered atomic.Int64
	var managerClients []*client
	soakOver := make(chan struct{})
	for i := 0; i < orgs*managersPerOrg; i++ {
		org, id := fmt.Sprint("shop", i%orgs), fmt.Sprint("m", i)
		m := e.mustConnect(token(t, auth.Manager, org, id), "soak-"+id)
		m.mustSubscribe("orgs/" + org + "/service/+") // on duty
		m.mustSubscribe("orgs/" + org + "/conversations/+")
		go func(m *client, id string) {
			mine := map[string]bool{} // conversations assigned to this manager
			for {
				select {
				case d := <-m.got:
					if conv, ok := d.payload["conversation"].(map[string]any); ok {
						if conv["manager_id"] == id {
							mine[conv["id"].(string)] = true
						}
						continue
					}
					msg, _ := d.payload["message"].(map[string]any)
					if msg == nil || msg["sender"].(map[string]any)["type"] != "visitor" || !mine[msg["conversation_id"].(string)] {
						continue
					}
					m.c.Publish(d.topic+"/post", 1, false, fmt.Sprintf(`{"content":"re: %s"}`, msg["content"]))
					answered.Add(1)
				case <-soakOver:
					return
				}
			}
		}(m, id)
		managerClients = append(managerClients, m)
	}

	wsURL := strings.Replace(e.base, "http", "ws", 1) + "/faye"
	deadline := time.Now().Add(duration)
	var cycles, delivered atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				if err := soakCycle(e, wsURL, fmt.Sprint("shop", w%orgs), fmt.Sprintf("w%d-%d", w, n), &delivered); err != nil {
					t.Errorf("worker %d cycle %d: %v", w, n, err)
					return
				}
				cycles.Add(1)
				time.Sleep(soakPause) // the next visitor arrives
			}
		}(w)
	}
	wg.Wait()
	close(soakOver)
	t.Logf("soak %s: %d visitor workers in %d shops, %d managers, %d chats, %d messages delivered live, %d answers by MQTT command",
		duration, workers, orgs, orgs*managersPerOrg, cycles.Load(), delivered.Load(), answered.Load())
	if cycles.Load() == 0 {
		t.Fatal("no chat completed")
	}

	// Everyone leaves (the visitors already did); then nothing may remain.
	for _, m := range managerClients {
		m.close()
	}
	// Clients that left cleanly are gone at once; any other within faye.idle_timeout (10s).
	var stats server.Stats
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if stats = e.srv.Stats(); stats == (server.Stats{}) {
			break
		}
	}
	if stats != (server.Stats{}) {
		t.Fatalf("after every client left, the server still holds %+v", stats)
	}
	// Keep-alive HTTP connections of the test's own client are not the server's: drop them.
	http.DefaultClient.CloseIdleConnections()
	// fasthttp keeps an idle worker goroutine up to its MaxIdleWorkerDuration (10 s) and sweeps
	// them every 10 s: one that served the last requests may live 20 s.
	for end := time.Now().Add(30 * time.Second); runtime.NumGoroutine() > baseGoroutines+10; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Fatalf("goroutines: %d at the start, %d after every client left", baseGoroutines, runtime.NumGoroutine())
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("goroutines %d -> %d; heap %.1f MiB -> %.1f MiB", baseGoroutines, runtime.NumGoroutine(), float64(baseHeap)/(1<<20), float64(ms.HeapAlloc)/(1<<20))
	if ms.HeapAlloc > baseHeap+64<<20 {
		t.Errorf("heap grew from %d to %d bytes over the soak", baseHeap, ms.HeapAlloc)
	}
}

// soakPause paces each visitor like a person, so that the soak is steady traffic rather than
// a stress test of the load generator.
const soakPause = 300 * time.Millisecond

// soakCycle is one visitor's whole chat.
func soakCycle(e *env, wsURL, org, visitor string, delivered *atomic.Int64) error {
	tok := token(e.t, auth.Visitor, org, visitor)
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		return err
	}
	defer ws.Close()
	send := func(v string) error { return ws.WriteMessage(websocket.TextMessage, []byte(v)) }
	read := func() ([]map[string]any, error) {
		_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		var f []map[string]any
		err := ws.ReadJSON(&f)
		return f, err
	}
	if err := send(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"` + tok + `"}}]`); err != nil {
		return err
	}
	f, err := read()
	if err != nil || len(f) == 0 || f[0]["successful"] != true {
		return fmt.Errorf("handshake: %v %v", f, err)
	}
	cid := f[0]["clientId"].(string)
	ext := `,"ext":{"token":"` + tok + `"}` // clients send their token on every message
	_ = send(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"websocket"},{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/service/` + visitor + `"}]`)
	if _, err := read(); err != nil {
		return err
	}
	r := e.post("/chat/service/"+visitor, tok, nil)
	if r.status != http.StatusCreated {
		return fmt.Errorf("open: %d %s", r.status, r.raw)
	}
	conv := r.obj("conversation")["id"].(string)
	_ = send(`[{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"/conversations/` + conv + `"}]`)
	for subscribed := false; !subscribed; { // frames before the ack are the service announcement
		f, err := read()
		if err != nil {
			return fmt.Errorf("subscribe: %v", err)
		}
		for _, m := range f {
			subscribed = subscribed || (m["channel"] == "/meta/subscribe" && m["successful"] == true)
		}
	}
	want := map[string]bool{}
	for i := 0; i < 3; i++ {
		content := fmt.Sprint(visitor, " says ", i)
		if r := e.post("/chat/conversation/"+conv, tok, map[string]any{"content": content}); r.status != http.StatusCreated {
			return fmt.Errorf("post: %d %s", r.status, r.raw)
		}
		want[content], want["re: "+content] = true, true
		time.Sleep(soakPause) // a person typing
	}
	for len(want) > 0 {
		f, err := read()
		if err != nil {
			return fmt.Errorf("waiting for %d messages: %v", len(want), err)
		}
		for _, m := range f {
			if data, ok := m["data"].(map[string]any); ok && m["channel"] == "/conversations/"+conv {
				content := data["message"].(map[string]any)["content"].(string)
				if want[content] {
					delete(want, content)
					delivered.Add(1)
				}
			}
		}
	}
	if r := e.post("/chat/conversation/"+conv+"/close", tok, nil); r.status != http.StatusOK {
		return fmt.Errorf("close: %d %s", r.status, r.raw)
	}
	return send(`[{"channel":"/meta/disconnect","clientId":"` + cid + `"` + ext + `}]`)
}
