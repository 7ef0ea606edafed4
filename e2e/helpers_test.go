// Package e2e tests the whole server from the outside: a real node on loopback ports, real
// HTTP requests, and real MQTT clients (Eclipse Paho).
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/internal/testkit"
	"github.com/convead/chat-server/server"
)

const secret = "e2e-secret-e2e-secret-e2e-secret-42"

type env struct {
	t    testing.TB
	base string // http://127.0.0.1:port
	mqtt string // tcp://127.0.0.1:port
	cfg  *config.Config
	srv  *server.Server
	stop func() // shuts the node down, at most once; the test's cleanup calls it too
}

// restart stops the node and starts a new one on the same configuration: same data folder,
// same bound ports.
func (e *env) restart() *env {
	e.t.Helper()
	e.stop()
	cfg := *e.cfg
	cfg.HTTP.Addr = strings.TrimPrefix(e.base, "http://")
	cfg.MQTT.Addr = strings.TrimPrefix(e.mqtt, "tcp://")
	return startConfig(e.t, &cfg)
}

// start runs a node with test settings; opts may change the configuration.
func start(t testing.TB, opts ...func(*config.Config)) *env {
	t.Helper()
	return startConfig(t, testConfig(t, opts...))
}

// testConfig is the default configuration on loopback ports, a temporary data folder and the
// test secret, changed by opts.
func testConfig(t testing.TB, opts ...func(*config.Config)) *config.Config {
	t.Helper()
	cfg := testkit.Config(t, secret)
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

func startConfig(t testing.TB, cfg *config.Config) *env {
	t.Helper()
	return startLogged(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func startLogged(t testing.TB, cfg *config.Config, log *slog.Logger) *env {
	t.Helper()
	srv, stop := testkit.Start(t, cfg, log)
	return &env{t: t, base: "http://" + srv.HTTPAddr().String(), mqtt: "tcp://" + srv.MQTTAddr().String(), cfg: cfg, srv: srv, stop: stop}
}

// token signs a token valid for an hour, or from the given offset (a negative one makes an
// expired token).
func token(t testing.TB, role auth.Role, org, sub string, shift ...time.Duration) string {
	t.Helper()
	now := time.Now()
	for _, s := range shift {
		now = now.Add(s)
	}
	tok, err := auth.Issue([]byte(secret), auth.Identity{Subject: sub, Role: role, Org: org}, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reply is a decoded HTTP reply.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) errCode() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		return fmt.Sprint(e["code"])
	}
	return ""
}

// obj returns body[key] as an object.
func (r reply) obj(key string) map[string]any {
	m, _ := r.body[key].(map[string]any)
	return m
}

// call sends a request. body may be nil, a string (sent as is with ctype) or a value (JSON).
func (e *env) call(method, path, tok string, body any, headers ...string) reply {
	e.t.Helper()
	var rd io.Reader
	ctype := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
		ctype = "application/x-www-form-urlencoded"
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (e *env) post(path, tok string, body any) reply {
	e.t.Helper()
	return e.call(http.MethodPost, path, tok, body)
}

// openConversation opens the conversation of visitor with tok, a visitor's or a manager's
// token, and fails the test unless it is a new one (201).
func openConversation(t testing.TB, e *env, tok, visitor string) map[string]any {
	t.Helper()
	return want(t, e.post("/chat/service/"+visitor, tok, nil), http.StatusCreated).obj("conversation")
}

// want fails the test unless r has the status.
func want(t testing.TB, r reply, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

type delivery struct {
	topic   string
	payload map[string]any
}

// client is a real MQTT client that records what it receives.
type client struct {
	t    testing.TB
	c    paho.Client
	got  chan delivery
	once sync.Once
}

// connect opens an MQTT 3.1.1 connection with tok as the password.
func (e *env) connect(tok, clientID string) (*client, error) {
	cl := &client{t: e.t, got: make(chan delivery, 1000)}
	opts := paho.NewClientOptions().AddBroker(e.mqtt).SetClientID(clientID).SetUsername("any").SetPassword(tok).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetProtocolVersion(4)
	cl.c = paho.NewClient(opts)
	ct := cl.c.Connect()
	if !ct.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := ct.Error(); err != nil {
		return nil, err
	}
	e.t.Cleanup(cl.close)
	return cl, nil
}

func (e *env) mustConnect(tok, clientID string) *client {
	e.t.Helper()
	cl, err := e.connect(tok, clientID)
	if err != nil {
		e.t.Fatalf("connect %s: %v", clientID, err)
	}
	return cl
}

// onDuty connects a manager's MQTT client and subscribes it to every service channel of
// organisation shop: the manager is on duty from the SUBACK on.
func (e *env) onDuty(tok, clientID string) *client {
	e.t.Helper()
	m := e.mustConnect(tok, clientID)
	m.mustSubscribe("orgs/shop/service/+")
	return m
}

func (c *client) close() { c.once.Do(func() { c.c.Disconnect(100) }) }

// subscribe returns the SUBACK code: the granted QoS, or 0x80 when refused.
func (c *client) subscribe(topic string) byte {
	c.t.Helper()
	st := c.c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		var p map[string]any
		_ = json.Unmarshal(m.Payload(), &p)
		c.got <- delivery{m.Topic(), p}
	})
	if !st.WaitTimeout(10 * time.Second) {
		c.t.Fatalf("subscribe %s timed out", topic)
	}
	return st.(*paho.SubscribeToken).Result()[topic]
}

func (c *client) mustSubscribe(topic string) {
	c.t.Helper()
	if code := c.subscribe(topic); code >= 0x80 {
		c.t.Fatalf("subscribe %s refused (0x%x)", topic, code)
	}
}

// next waits for the next delivery.
func (c *client) next() delivery {
	c.t.Helper()
	select {
	case d := <-c.got:
		return d
	case <-time.After(10 * time.Second):
		c.t.Fatal("no delivery within 10s")
		return delivery{}
	}
}

// none checks that nothing arrives for a while: used after the positive path has proved that
// deliveries do flow, so silence means refusal, not slowness.
func (c *client) none(d time.Duration) {
	c.t.Helper()
	select {
	case got := <-c.got:
		c.t.Fatalf("unexpected delivery on %s: %v", got.topic, got.payload)
	case <-time.After(d):
	}
}

// waitFor retries cond until it holds (state changes through the broker are asynchronous).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startProcess starts cmd with its stderr on the test's, killed when the test ends; it returns
// cmd's stdout and a channel that receives cmd's exit.
func startProcess(t testing.TB, cmd *exec.Cmd) (io.ReadCloser, <-chan error) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return stdout, exited
}

// stopGracefully sends SIGTERM to a process startProcess started and fails the test unless it
// exits with status 0 within 15 s.
func stopGracefully(t *testing.T, p *os.Process, exited <-chan error) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
}
