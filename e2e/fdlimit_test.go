package e2e

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
)

// fdLimit is the descriptor limit of the server under test: enough to start and serve a few
// clients, far below the connections the test opens.
const fdLimit = 48

// TestFDLimitHelper is not a test: run by TestFDExhaustion as a child process, it lowers its
// descriptor limit and becomes the server binary (exec keeps the limit). The hard limit is
// lowered too: Go raises the soft one to the hard one at start.
func TestFDLimitHelper(t *testing.T) {
	bin := os.Getenv("CHAT_TEST_EXEC")
	if bin == "" {
		t.Skip("helper process of TestFDExhaustion")
	}
	n, _ := strconv.ParseUint(os.Getenv("CHAT_TEST_NOFILE"), 10, 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		t.Fatal(err)
	}
	t.Fatal(syscall.Exec(bin, []string{bin}, os.Environ()))
}

// TestFDExhaustion runs the binary under a low descriptor limit and opens more connections
// than it allows, to both ports: the accepts fail with EMFILE. Once the connections close the
// server must serve again, on HTTP and MQTT, ready; before, the HTTP server stopped and the
// process exited 0, or the MQTT listener stopped for good while /readyz said ready.
func TestFDExhaustion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped in -short mode")
	}
	bin := buildServer(t)
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDLimitHelper$")
	cmd.Env = append(os.Environ(), "CHAT_TEST_EXEC="+bin, "CHAT_TEST_NOFILE="+strconv.Itoa(fdLimit),
		"CHAT_HTTP_ADDR="+httpAddr, "CHAT_MQTT_ADDR="+mqttAddr, "CHAT_AUTH_JWT_SECRET="+secret, "CHAT_DATA_DIR="+t.TempDir())
	stdout, exited := startProcess(t, cmd)

	ready := make(chan struct{})
	retrying := map[string]chan struct{}{"http": make(chan struct{}), "mqtt": make(chan struct{})}
	go func() {
		lines := bufio.NewScanner(stdout)
		seen := map[string]bool{}
		for lines.Scan() {
			l := lines.Text()
			switch {
			case strings.Contains(l, `"chat server ready"`):
				close(ready)
			case strings.Contains(l, "accept failed: retrying"):
				for name, ch := range retrying {
					if strings.Contains(l, `"listener":"`+name+`"`) && !seen[name] {
						seen[name] = true
						close(ch)
					}
				}
			}
		}
	}()
	select {
	case <-ready:
	case err := <-exited:
		t.Fatalf("the server exited before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the server was not ready within 30s")
	}

	var conns []net.Conn
	for _, addr := range []string{httpAddr, mqttAddr} {
		for range fdLimit {
			c, err := net.Dial("tcp", addr) // the kernel completes it: the server's accept is what fails
			if err != nil {
				t.Fatalf("dial %s: %v", addr, err)
			}
			conns = append(conns, c)
		}
	}
	for name, ch := range retrying {
		select {
		case <-ch:
		case err := <-exited:
			t.Fatalf("the server exited when out of descriptors (%s): %v", name, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("no retried accept error logged for %s", name)
		}
	}
	for _, c := range conns {
		c.Close()
	}

	e := &env{t: t, base: "http://" + httpAddr, mqtt: "tcp://" + mqttAddr}
	var status int
	var body string
	waitFor(t, "/readyz to answer 200 again", func() bool {
		resp, err := http.Get(e.base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b := make([]byte, 512)
		n, _ := resp.Body.Read(b)
		status, body = resp.StatusCode, string(b[:n])
		return status == http.StatusOK
	})
	if !strings.Contains(body, `"http":"ok"`) || !strings.Contains(body, `"broker":"ok"`) {
		t.Fatalf("/readyz: %d %s", status, body)
	}
	e.mustConnect(token(t, auth.Visitor, "shop1", "v1"), "v1").close()

	stopGracefully(t, cmd.Process, exited)
}
