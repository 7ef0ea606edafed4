package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/convead/chat-server/auth"
)

// benchServer is the real binary under load from this process, with the per-address limits
// raised as load tests do. CHAT_BENCH_BIN runs another build (e.g. of an older commit) for a
// comparison.
type benchServer struct {
	b    *testing.B
	p    *process
	addr string
}

func startBenchServer(b *testing.B) *benchServer {
	bin := os.Getenv("CHAT_BENCH_BIN")
	if bin == "" {
		bin = buildServer(b)
	}
	addr := freeAddr(b)
	p := runServer(b, bin, b.TempDir(), []string{"CHAT_HTTP_ADDR=" + addr, "CHAT_MQTT_ADDR=127.0.0.1:0", "CHAT_AUTH_JWT_SECRET=" + secret,
		"CHAT_LIMITS_HANDSHAKES_PER_MINUTE_PER_IP=0", "CHAT_LIMITS_CONNECTIONS_PER_IP=0", "CHAT_LIMITS_QUEUE_PER_CLIENT=10000"})
	return &benchServer{b: b, p: p, addr: addr}
}

// stat returns the server's CPU time (user + system) and resident memory.
func (s *benchServer) stat() (cpu time.Duration, rss int64) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(s.p.cmd.Process.Pid), "stat"))
	if err != nil {
		s.b.Fatal(err)
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, pages * int64(os.Getpagesize()) // USER_HZ is 100
}

// benchClient is a Faye websocket client: handshaken, connected, subscribed. A goroutine
// reads its frames and hands every delivery's data to onData.
type benchClient struct {
	ws  *websocket.Conn
	cid string
	ext string // its token, sent on every message
	wm  sync.Mutex
}

func (s *benchServer) client(tok, sub string, onData func([]byte)) *benchClient {
	s.b.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/faye", nil)
	if err != nil {
		s.b.Fatal(err)
	}
	s.b.Cleanup(func() { ws.Close() })
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"`+tok+`"}}]`))
	var hs []map[string]any
	if err := ws.ReadJSON(&hs); err != nil || len(hs) != 1 || hs[0]["clientId"] == nil {
		s.b.Fatalf("handshake: %v %v", hs, err)
	}
	c := &benchClient{ws: ws, cid: hs[0]["clientId"].(string), ext: `,"ext":{"token":"` + tok + `"}`}
	_ = ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"/meta/connect","clientId":"`+c.cid+`"`+c.ext+`,"connectionType":"websocket"},{"channel":"/meta/subscribe","clientId":"`+c.cid+`"`+c.ext+`,"subscription":"`+sub+`"}]`))
	if _, _, err := ws.ReadMessage(); err != nil { // the subscribe reply; the connect is held
		s.b.Fatal(err)
	}
	go func() {
		marker := []byte(`"data":`)
		for {
			_, frame, err := ws.ReadMessage()
			if err != nil {
				return
			}
			for {
				i := bytes.Index(frame, marker)
				if i < 0 {
					break
				}
				frame = frame[i+len(marker):]
				onData(frame)
			}
		}
	}()
	return c
}

// publish sends one publish over the client's socket (its reply is not awaited).
func (c *benchClient) publish(ch, data string) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	return c.ws.WriteMessage(websocket.TextMessage, []byte(`[{"channel":"`+ch+`","clientId":"`+c.cid+`"`+c.ext+`,"data":`+data+`}]`))
}

// report adds the server's CPU cost of the deliveries.
func (s *benchServer) report(deliveries int64, cpu0 time.Duration, start time.Time) {
	cpu, _ := s.stat()
	s.b.ReportMetric(float64(deliveries)/(cpu-cpu0).Seconds(), "deliveries/server-CPU-s")
	s.b.ReportMetric(float64(deliveries)/time.Since(start).Seconds(), "deliveries/s")
	s.b.ReportMetric((cpu - cpu0).Seconds(), "server-CPU-s")
}

// BenchmarkFayeWebsocketFanOut: 1,000 websocket subscribers of one channel, one publisher on a
// websocket. "throughput" publishes as fast as the deliveries flow (at most 16 publishes
// undelivered); "latency" publishes 66 a second and reports the delivery delay percentiles.
//
//	go test ./e2e -run '^$' -bench FayeWebsocketFanOut -benchtime 1x
func BenchmarkFayeWebsocketFanOut(b *testing.B) {
	const subscribers = 1000
	s := startBenchServer(b)
	tok := token(b, auth.Service, "shop", "s")
	var delivered atomic.Int64
	var latMu sync.Mutex
	var lat []time.Duration
	recordLatency := atomic.Bool{}
	for range subscribers {
		s.client(tok, "/fan", func(data []byte) {
			delivered.Add(1)
			if recordLatency.Load() {
				sent, _ := strconv.ParseInt(string(data[:bytes.IndexAny(data, "},]")]), 10, 64)
				d := time.Since(time.Unix(0, sent))
				latMu.Lock()
				lat = append(lat, d)
				latMu.Unlock()
			}
		})
	}
	pub := s.client(tok, "/publisher", func([]byte) {})
	wait := func(want int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for delivered.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d deliveries", delivered.Load(), want)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.Run("throughput", func(b *testing.B) {
		const publishes = 2000
		delivered.Store(0)
		cpu0, _ := s.stat()
		start := time.Now()
		for i := range int64(b.N * publishes) {
			if i >= 16 {
				wait((i - 16) * subscribers)
			}
			if err := pub.publish("/fan", "0"); err != nil {
				b.Fatal(err)
			}
		}
		wait(int64(b.N*publishes) * subscribers)
		s.b = b
		s.report(delivered.Load(), cpu0, start)
	})
	b.Run("latency-66-per-s", func(b *testing.B) {
		const publishes = 330 // 5 s
		delivered.Store(0)
		recordLatency.Store(true)
		tick := time.NewTicker(time.Second / 66)
		defer tick.Stop()
		for range b.N * publishes {
			<-tick.C
			if err := pub.publish("/fan", strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
				b.Fatal(err)
			}
		}
		wait(int64(b.N*publishes) * subscribers)
		latMu.Lock()
		defer latMu.Unlock()
		slices.Sort(lat)
		for _, q := range []float64{0.5, 0.99, 0.999} {
			b.ReportMetric(float64(lat[int(q*float64(len(lat)-1))].Microseconds())/1000, fmt.Sprintf("p%g-ms", q*100))
		}
	})
}

// BenchmarkFayeWebsocketPairs: 500 conversations of two websocket clients, both publishing to
// their conversation's channel, which both subscribe to (2 deliveries per publish).
//
//	go test ./e2e -run '^$' -bench FayeWebsocketPairs -benchtime 1x
func BenchmarkFayeWebsocketPairs(b *testing.B) {
	const pairs, publishes = 500, 100 // publishes per client
	s := startBenchServer(b)
	tok := token(b, auth.Service, "shop", "s")
	var delivered atomic.Int64
	clients := make([]*benchClient, 0, 2*pairs)
	for i := range pairs {
		for range 2 {
			clients = append(clients, s.client(tok, fmt.Sprint("/pair/", i), func([]byte) { delivered.Add(1) }))
		}
	}
	want := int64(b.N*publishes*len(clients)) * 2
	cpu0, _ := s.stat()
	start := time.Now()
	var wg sync.WaitGroup
	var sent atomic.Int64
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range b.N * publishes {
				// At most a few publishes per client are undelivered.
				for sent.Load()*2-delivered.Load() > int64(8*len(clients)) {
					time.Sleep(200 * time.Microsecond)
				}
				sent.Add(1)
				if err := c.publish(fmt.Sprint("/pair/", i/2), "1"); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(2 * time.Minute)
	for delivered.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d deliveries", delivered.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	s.report(delivered.Load(), cpu0, start)
}

// BenchmarkFayeWebsocketClients holds many idle Faye websocket clients (handshaken,
// subscribed, connect held) on the real binary, checks that each still receives, and reports
// the server's memory per client. CHAT_BENCH_CLIENTS sets how many (default 10,000).
//
//	go test ./e2e -run '^$' -bench FayeWebsocketClients -benchtime 1x
func BenchmarkFayeWebsocketClients(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("CHAT_BENCH_CLIENTS")); err == nil {
		n = v
	}
	s := startBenchServer(b)
	time.Sleep(200 * time.Millisecond)
	_, before := s.stat()
	var delivered atomic.Int64
	for i := range n {
		v := fmt.Sprint("v", i)
		s.client(token(b, auth.Visitor, "shop", v), "/service/"+v, func([]byte) { delivered.Add(1) })
	}
	time.Sleep(time.Second)
	_, after := s.stat()
	b.ReportMetric(float64(after-before)/float64(n), "server-bytes/client")
	b.ReportMetric(float64(after)/(1<<20), "server-MiB")
	// Everyone still receives.
	all := s.client(token(b, auth.Service, "shop", "s"), "/all", func([]byte) {})
	for i := range n {
		if err := all.publish(fmt.Sprint("/service/v", i), `{"hi":1}`); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for delivered.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d clients received", delivered.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
