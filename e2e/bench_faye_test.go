package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// BenchmarkFayeFirstMessage measures, per transport, the time from a client's handshake to its
// first delivered message: handshake, subscribe, connect, a server-side publish, delivery.
//
//	go test ./e2e -run '^$' -bench FayeFirstMessage -benchtime 200x
func BenchmarkFayeFirstMessage(b *testing.B) {
	// Thousands of handshakes from one address: the per-address limits are raised.
	e := start(b, func(c *config.Config) { c.Limits.HandshakesPerMinutePerIP, c.Limits.ConnectionsPerIP = 0, 0 })
	sTok := token(b, auth.Service, "shop", "s")
	ext := `,"ext":{"token":"` + sTok + `"}` // clients send their token on every message
	publish := func(ch string) {
		_, r, _ := e.bayeux(`[{"channel":"` + ch + `","data":{"hi":1},"ext":{"token":"` + sTok + `"}}]`)
		if len(r) != 1 || r[0]["successful"] != true {
			b.Errorf("publish: %v", r) // runs in its own goroutine: no Fatal
		}
	}
	handshake := `{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling","callback-polling","websocket","eventsource"],"ext":{"token":"` + sTok + `"}}`
	subscribe := func(cid, ch string) string {
		return `{"channel":"/meta/subscribe","clientId":"` + cid + `"` + ext + `,"subscription":"` + ch + `"}`
	}

	b.Run("long-polling", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ch := fmt.Sprint("/lp/", i)
			_, r, _ := e.bayeux(handshake)
			cid := r[0]["clientId"].(string)
			e.bayeux(subscribe(cid, ch))
			go publish(ch)
			_, r, _ = e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"long-polling"}]`)
			if len(r) != 2 {
				b.Fatalf("connect: %v", r)
			}
		}
	})
	b.Run("callback-polling", func(b *testing.B) {
		get := func(msg string) string {
			resp, err := http.Get(e.base + "/faye?" + url.Values{"message": {msg}, "jsonp": {"cb"}}.Encode())
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return strings.TrimSuffix(strings.TrimPrefix(string(body), "/**/cb("), ");")
		}
		for i := 0; i < b.N; i++ {
			ch := fmt.Sprint("/jsonp/", i)
			var r []map[string]any
			_ = json.Unmarshal([]byte(get("["+handshake+"]")), &r)
			cid := r[0]["clientId"].(string)
			get("[" + subscribe(cid, ch) + "]")
			go publish(ch)
			_ = json.Unmarshal([]byte(get(`[{"channel":"/meta/connect","clientId":"`+cid+`"`+ext+`,"connectionType":"callback-polling"}]`)), &r)
			if len(r) != 2 {
				b.Fatalf("connect: %v", r)
			}
		}
	})
	b.Run("eventsource", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ch := fmt.Sprint("/es/", i)
			_, r, _ := e.bayeux(handshake)
			cid := r[0]["clientId"].(string)
			e.bayeux(subscribe(cid, ch))
			req, _ := http.NewRequest(http.MethodGet, e.base+"/faye/"+cid, nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+sTok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			e.bayeux(`[{"channel":"/meta/connect","clientId":"` + cid + `"` + ext + `,"connectionType":"eventsource"}]`)
			go publish(ch)
			lines := bufio.NewReader(resp.Body)
			for {
				line, err := lines.ReadString('\n')
				if err != nil {
					b.Fatal(err)
				}
				if strings.HasPrefix(line, "data: ") {
					break
				}
			}
			resp.Body.Close()
			e.bayeux(`[{"channel":"/meta/disconnect","clientId":"` + cid + `"` + ext + `}]`)
		}
	})
	b.Run("websocket", func(b *testing.B) {
		url := strings.Replace(e.base, "http", "ws", 1) + "/faye"
		for i := 0; i < b.N; i++ {
			ch := fmt.Sprint("/ws/", i)
			ws, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				b.Fatal(err)
			}
			read := func() []map[string]any {
				_, data, err := ws.ReadMessage()
				if err != nil {
					b.Fatal(err)
				}
				var f []map[string]any
				_ = json.Unmarshal(data, &f)
				return f
			}
			_ = ws.WriteMessage(websocket.TextMessage, []byte("["+handshake+"]"))
			cid := read()[0]["clientId"].(string)
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/connect","clientId":"`+cid+`"`+ext+`,"connectionType":"websocket"},`+subscribe(cid, ch)+`]`))
			read() // the subscribe reply (the connect is held)
			go publish(ch)
			if f := read(); len(f) != 1 || f[0]["channel"] != ch {
				b.Fatalf("delivery: %v", f)
			}
			ws.Close()
		}
	})
}

// BenchmarkFayeIdleWebsocketMemory connects idle Faye websocket clients (handshaken,
// subscribed, connect held) to the real binary and reports the server's resident memory per
// client, read from /proc.
//
//	go test ./e2e -run '^$' -bench FayeIdleWebsocketMemory -benchtime 1x
func BenchmarkFayeIdleWebsocketMemory(b *testing.B) {
	const clients = 1000
	cmd := exec.Command(buildServer(b))
	cmd.Dir = b.TempDir()
	cmd.Env = append(os.Environ(), "CHAT_HTTP_ADDR=127.0.0.1:0", "CHAT_MQTT_ADDR=127.0.0.1:0", "CHAT_AUTH_JWT_SECRET="+secret,
		// A load from one address: the per-address limits are raised, as load tests do.
		"CHAT_LIMITS_HANDSHAKES_PER_MINUTE_PER_IP=0", "CHAT_LIMITS_CONNECTIONS_PER_IP=0")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	var httpAddr string
	lines := bufio.NewScanner(stdout)
	for httpAddr == "" && lines.Scan() {
		var entry struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry.Msg == "http listening" {
			httpAddr = entry.Addr
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	rss := func() int64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
		return 0
	}
	time.Sleep(200 * time.Millisecond)
	before := rss()
	conns := make([]*websocket.Conn, 0, clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < clients; i++ {
		ws, _, err := websocket.DefaultDialer.Dial("ws://"+httpAddr+"/faye", nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, ws)
		v := fmt.Sprint("v", i)
		tok := token(b, auth.Visitor, "shop", v)
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"`+tok+`"}}]`))
		_, data, err := ws.ReadMessage()
		if err != nil {
			b.Fatal(err)
		}
		var f []map[string]any
		_ = json.Unmarshal(data, &f)
		cid := f[0]["clientId"].(string)
		ext := `,"ext":{"token":"` + tok + `"}` // clients send their token on every message
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/connect","clientId":"`+cid+`"`+ext+`,"connectionType":"websocket"},{"channel":"/meta/subscribe","clientId":"`+cid+`"`+ext+`,"subscription":"/service/`+v+`"}]`))
		if _, _, err := ws.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	after := rss()
	b.ReportMetric(float64(after-before)/clients, "server-bytes/client")
	b.ReportMetric(float64(after)/(1<<20), "server-MiB")
}
