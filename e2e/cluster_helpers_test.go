package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsServer is a real NATS server in this process on a loopback port; it can be stopped and
// started again on the same port (an outage).
type natsServer struct {
	t    testing.TB
	port int
	srv  *natsserver.Server
}

func startNATS(t testing.TB) *natsServer {
	t.Helper()
	n := &natsServer{t: t, port: -1}
	n.start()
	n.port = n.srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) start() {
	n.t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: n.port, NoLog: true, NoSigs: true})
	if err != nil {
		n.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats-server did not start")
	}
	n.srv = srv
}

func (n *natsServer) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv.WaitForShutdown()
		n.srv = nil
	}
}

func (n *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// clusterNode is one chat-server process of a test cluster.
type clusterNode struct {
	*env
	name string
	proc *process
}

// startCluster runs count chat-server processes of the built binary on loopback ports, joined
// over nats and sharing one FerretDB database.
func startCluster(t *testing.T, bin string, nats *natsServer, mongoURI string, count int) []*clusterNode {
	t.Helper()
	db := fmt.Sprintf("cluster_%d", time.Now().UnixNano())
	nodes := make([]*clusterNode, count)
	for i := range nodes {
		httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
		name := fmt.Sprint("node-", i+1)
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		proc := runServer(t, bin, dir, []string{
			"CHAT_HTTP_ADDR=" + httpAddr, "CHAT_MQTT_ADDR=" + mqttAddr, "CHAT_AUTH_JWT_SECRET=" + secret,
			"CHAT_DATA_DIR=" + dir, "CHAT_MONGO_URI=" + mongoURI, "CHAT_MONGO_DATABASE=" + db,
			"CHAT_CLUSTER_NATS_URL=" + nats.url(), "CHAT_CLUSTER_NODE_NAME=" + name,
			"CHAT_CLUSTER_HEARTBEAT=200ms", "CHAT_CLUSTER_NODE_TIMEOUT=1500ms",
			"CHAT_FAYE_TIMEOUT=2s", "CHAT_FAYE_PING=500ms", "CHAT_FAYE_IDLE_TIMEOUT=10s",
			"CHAT_LIMITS_POSTS_PER_MINUTE=0", "CHAT_LIMITS_OPENS_PER_MINUTE_PER_IP=0", "CHAT_LIMITS_OPENS_PER_MINUTE_PER_VISITOR=0",
			"CHAT_API_SWEEP_INTERVAL=200ms",
		})
		nodes[i] = &clusterNode{env: &env{t: t, base: "http://" + httpAddr, mqtt: "tcp://" + mqttAddr}, name: name, proc: proc}
	}
	return nodes
}

// fayeMsg is a Bayeux delivery.
type fayeMsg struct {
	channel string
	data    map[string]any
}

// lpClient is a Faye long-polling client in Go, like the official client over long-polling: it
// handshakes, subscribes, and keeps a /meta/connect open. Each request goes to the next node
// of its list when alternate is set (no sticky sessions), else to the current one until it
// fails, as behind a load balancer that takes a dead node out. On "401 unknown client" it
// handshakes again and resubscribes, then calls onResume (the history catch-up).
type lpClient struct {
	t         *testing.T
	tok       string
	alternate bool
	http      *http.Client
	got       chan fayeMsg
	onResume  func(base string)

	mu    sync.Mutex
	bases []string
	cur   int
	id    string
	subs  []string
	// rehandshakes counts handshakes after the first.
	rehandshakes int
	// byNode counts requests sent per node.
	byNode map[string]int
}

func newLPClient(t *testing.T, tok string, alternate bool, bases ...string) *lpClient {
	return &lpClient{t: t, tok: tok, alternate: alternate, bases: bases, got: make(chan fayeMsg, 1000),
		http: &http.Client{Timeout: 30 * time.Second}, byNode: map[string]int{}}
}

// base returns the node for the next request.
func (c *lpClient) base() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bases[c.cur%len(c.bases)]
	if c.alternate {
		c.cur++
	}
	c.byNode[b]++
	return b
}

// failed moves to the next node after a transport error.
func (c *lpClient) failed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur++
}

func (c *lpClient) send(ctx context.Context, msgs ...map[string]any) ([]map[string]any, string, error) {
	base := c.base()
	for _, m := range msgs {
		c.mu.Lock()
		if m["channel"] != "/meta/handshake" {
			m["clientId"] = c.id
		}
		c.mu.Unlock()
		m["ext"] = map[string]any{"token": c.tok}
	}
	body, _ := json.Marshal(msgs)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/faye", bytes.NewReader(body))
	if err != nil {
		return nil, base, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.failed()
		return nil, base, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, base, fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	for _, r := range out {
		ch, _ := r["channel"].(string)
		if data, ok := r["data"].(map[string]any); ok && !strings.HasPrefix(ch, "/meta/") {
			c.got <- fayeMsg{ch, data}
		}
	}
	return out, base, nil
}

// handshake and subscribe (again, after a 401).
func (c *lpClient) join(ctx context.Context) (string, error) {
	r, base, err := c.send(ctx, map[string]any{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": []string{"long-polling"}})
	if err != nil {
		return base, err
	}
	if len(r) != 1 || r[0]["successful"] != true {
		return base, fmt.Errorf("handshake: %v", r)
	}
	c.mu.Lock()
	c.id = r[0]["clientId"].(string)
	subs := c.subs
	c.mu.Unlock()
	if len(subs) > 0 {
		r, _, err := c.send(ctx, map[string]any{"channel": "/meta/subscribe", "subscription": subs})
		if err != nil || len(r) != 1 || r[0]["successful"] != true {
			return base, fmt.Errorf("resubscribe: %v %v", r, err)
		}
	}
	return base, nil
}

// start handshakes, subscribes to channels and runs the connect loop until the test ends.
func (c *lpClient) start(channels ...string) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := c.join(ctx); err != nil {
		c.t.Fatal(err)
	}
	r, _, err := c.send(ctx, map[string]any{"channel": "/meta/subscribe", "subscription": channels})
	if err != nil || len(r) != 1 || r[0]["successful"] != true {
		c.t.Fatalf("subscribe %v: %v %v", channels, r, err)
	}
	c.mu.Lock()
	c.subs = channels
	c.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r, _, err := c.send(ctx, map[string]any{"channel": "/meta/connect", "connectionType": "long-polling"})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for _, m := range r {
				if m["channel"] == "/meta/connect" && m["successful"] != true {
					base, err := c.join(ctx)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					c.mu.Lock()
					c.rehandshakes++
					c.mu.Unlock()
					if c.onResume != nil {
						c.onResume(base)
					}
				}
			}
		}
	}()
	c.t.Cleanup(func() { cancel(); <-done })
}

// publish sends a Bayeux publish.
func (c *lpClient) publish(channel string, data any) {
	c.t.Helper()
	r, _, err := c.send(context.Background(), map[string]any{"channel": channel, "data": data})
	if err != nil || len(r) != 1 || r[0]["successful"] != true {
		c.t.Fatalf("publish to %s: %v %v", channel, r, err)
	}
}

// next waits for the next delivery.
func (c *lpClient) next() fayeMsg {
	c.t.Helper()
	select {
	case m := <-c.got:
		return m
	case <-time.After(15 * time.Second):
		c.t.Fatal("no Faye delivery within 15s")
		return fayeMsg{}
	}
}

// nextOn waits for the next delivery on channel, skipping others.
func (c *lpClient) nextOn(channel string) fayeMsg {
	c.t.Helper()
	for {
		if m := c.next(); m.channel == channel {
			return m
		}
	}
}

func (c *lpClient) clientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}
