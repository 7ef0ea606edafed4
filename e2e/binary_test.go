package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary runs the real chat-server binary as an operator would: embedded defaults, ports
// chosen by the system and read from the log, tokens from `chat-server token`, the README's
// walk-through over HTTP, and a graceful stop on SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped in -short mode")
	}
	bin := buildServer(t)
	work := filepath.Join(t.TempDir(), "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	srvEnv := append(os.Environ(), "CHAT_HTTP_ADDR=127.0.0.1:0", "CHAT_MQTT_ADDR=127.0.0.1:0", "CHAT_AUTH_JWT_SECRET=")

	srv := exec.Command(bin)
	srv.Dir, srv.Env = work, srvEnv
	stdout, exited := startProcess(t, srv)

	addrs := map[string]string{}
	lines := bufio.NewScanner(stdout)
	for len(addrs) < 2 && lines.Scan() {
		var entry struct{ Msg, Addr string }
		if json.Unmarshal(lines.Bytes(), &entry) == nil && strings.HasSuffix(entry.Msg, " listening") {
			addrs[strings.TrimSuffix(entry.Msg, " listening")] = entry.Addr
		}
	}
	if addrs["http"] == "" || addrs["mqtt"] == "" || strings.HasSuffix(addrs["http"], ":0") {
		t.Fatalf("bound addresses not logged: %v", addrs)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()

	info, err := os.Stat(filepath.Join(work, "data", "jwt-secret"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("generated secret: %v, mode %v; want a 0600 file", err, info)
	}

	tok := func(role, org, sub string) string {
		cmd := exec.Command(bin, "token", "-role", role, "-org", org, "-sub", sub, "-ttl", "1h")
		cmd.Dir, cmd.Env = work, srvEnv
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("token: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	e := &env{t: t, base: "http://" + addrs["http"]}
	// The probes say how the node is, and nothing about anyone.
	for path, body := range map[string]string{
		"/healthz": `{"status":"ok"}`,
		"/readyz":  `{"checks":{"broker":"ok","http":"ok","store":"ok"},"status":"ready"}`,
	} {
		if r := e.call(http.MethodGet, path, "", nil); r.status != 200 || r.raw != body {
			t.Errorf("GET %s: %d %s, want %s", path, r.status, r.raw, body)
		}
	}
	svc, mgr, vis := tok("service", "shop1", "backoffice"), tok("manager", "shop1", "anna"), tok("visitor", "shop1", "visitor42")

	want(t, e.call(http.MethodPut, "/admin/orgs/shop1", svc, map[string]any{"name": "My shop", "chat_offline_message": "We are offline"}), http.StatusOK)
	want(t, e.call(http.MethodPut, "/admin/orgs/shop1/managers/anna", svc, map[string]any{"name": "Anna", "capacity": 5}), http.StatusOK)
	if r := e.post("/chat/service/visitor42", vis, nil); r.errCode() != "chat_offline" {
		t.Fatalf("nobody on duty: %s", r.raw)
	}
	conv := openConversation(t, e, mgr, "visitor42")
	cid := fmt.Sprint(conv["id"])
	m1 := want(t, e.post("/chat/conversation/"+cid, vis, map[string]any{"content": "Hello!", "client_message_id": "a1"}), http.StatusCreated).obj("message")
	want(t, e.post("/chat/conversation/"+cid, mgr, "content=Hi%2C+how+can+I+help%3F"), http.StatusCreated)
	hist := want(t, e.post("/chat/conversation/"+cid+"/messages?count=10", vis, nil), http.StatusOK)
	if n := len(hist.body["messages"].([]any)); n != 2 {
		t.Fatalf("history has %d messages", n)
	}
	want(t, e.post(fmt.Sprintf("/chat/conversation/%s/message/%s/mark_read", cid, m1["id"]), mgr, nil), http.StatusOK)
	want(t, e.post("/chat/notifications/visitor42", svc, map[string]any{"notification": map[string]any{"title": "Sale"}}), http.StatusCreated)
	want(t, e.post("/chat/conversation/"+cid+"/close", mgr, nil), http.StatusOK)

	stopGracefully(t, srv.Process, exited)
}

func TestBinaryRefusesBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped in -short mode")
	}
	cmd := exec.Command(buildServer(t))
	cmd.Env = append(os.Environ(), "CHAT_API_MAX_MESSAGES_COUNT=lots")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CHAT_API_MAX_MESSAGES_COUNT") {
		t.Fatalf("bad configuration: err %v, output %s; want a failure naming the variable", err, out)
	}
}
