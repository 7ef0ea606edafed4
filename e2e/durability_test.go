package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
)

// buildServer builds the chat-server binary for a test.
func buildServer(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chat-server")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/chat-server").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// process is a running server binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// runServer starts the binary with env and waits until it listens.
func runServer(t testing.TB, bin, dir string, env []string) *process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	stdout, exited := startProcess(t, cmd)
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { <-exited; close(p.done) }()
	t.Cleanup(func() { p.kill() }) // runs first, and waits: the data folder goes once the process has
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if bytes.Contains(lines.Bytes(), []byte(`"chat server ready"`)) {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return p
		}
	}
	t.Fatal("the server exited before it was ready")
	return nil
}

func (p *process) kill() { p.stop(syscall.SIGKILL) }

// stop sends sig and waits for the process to end.
func (p *process) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	<-p.done
}

// ferret is FerretDB (SQLite) in a process of its own, built without the race detector so that
// race-built tests do not slow it down; it can be stopped and started again on the same port
// and data.
type ferret struct {
	t         testing.TB
	bin, addr string
	dir       string
	cmd       *exec.Cmd
}

func newFerret(t testing.TB) *ferret {
	t.Helper()
	f := &ferret{t: t, bin: filepath.Join(t.TempDir(), "ferretdb"), addr: freeAddr(t), dir: t.TempDir()}
	if out, err := exec.Command("go", "build", "-o", f.bin, "./ferretdb").CombinedOutput(); err != nil {
		t.Fatalf("build ferretdb: %v\n%s", err, out)
	}
	f.start()
	t.Cleanup(f.stop)
	return f
}

// start runs it and returns its URI once it listens.
func (f *ferret) start() string {
	f.t.Helper()
	f.cmd = exec.Command(f.bin, f.addr, f.dir)
	stdout, _ := f.cmd.StdoutPipe()
	f.cmd.Stderr = os.Stderr
	if err := f.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	uri, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		f.t.Fatalf("ferretdb did not start: %v", err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return strings.TrimSpace(uri)
}

// stop kills it (an outage, not a shutdown).
func (f *ferret) stop() {
	if f.cmd != nil {
		_ = f.cmd.Process.Kill()
		_ = f.cmd.Wait()
		f.cmd = nil
	}
}

func (f *ferret) uri() string { return "mongodb://" + f.addr + "/" }

// startFerretDB runs FerretDB for a test and returns its URI.
func startFerretDB(t testing.TB) string { return newFerret(t).uri() }

// TestDurabilityKill9: many senders post with client_message_ids while the server is killed
// with SIGKILL several times (or, for a rolling restart, stopped with SIGTERM); every post is
// retried until acknowledged. In the end every acknowledged message is stored exactly once,
// each sender's messages in order.
func TestDurabilityKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real server processes: skipped in -short mode")
	}
	bin := buildServer(t)
	for _, run := range []struct {
		backend string
		signal  syscall.Signal
	}{
		{"embedded", syscall.SIGKILL},
		{"mongodb", syscall.SIGKILL},
		{"embedded", syscall.SIGTERM}, // a rolling restart
	} {
		backend := run.backend
		t.Run(backend+"/"+run.signal.String(), func(t *testing.T) {
			httpAddr := freeAddr(t)
			vars := []string{"CHAT_HTTP_ADDR=" + httpAddr, "CHAT_MQTT_ADDR=" + freeAddr(t), "CHAT_AUTH_JWT_SECRET=" + secret,
				"CHAT_DATA_DIR=" + t.TempDir(), "CHAT_API_MAX_MESSAGES_COUNT=1000", "CHAT_LIMITS_POSTS_PER_MINUTE=0",
				"CHAT_LIMITS_OPENS_PER_MINUTE_PER_IP=0"}
			if backend == "mongodb" {
				uri := os.Getenv("CHAT_TEST_MONGO_URI")
				if uri == "" {
					uri = startFerretDB(t)
				}
				vars = append(vars, "CHAT_MONGO_URI="+uri, fmt.Sprintf("CHAT_MONGO_DATABASE=durability_%d", time.Now().UnixNano()))
			}
			dir := t.TempDir()
			srv := runServer(t, bin, dir, vars)
			e := &env{t: t, base: "http://" + httpAddr}
			mTok := token(t, auth.Manager, "shop", "m1")

			const senders, perSender = 8, 100
			convs := make([]string, senders)
			for i := range convs {
				r := want(t, e.post(fmt.Sprint("/chat/service/v", i), mTok, nil), http.StatusCreated)
				convs[i] = r.obj("conversation")["id"].(string)
			}
			client := &http.Client{Timeout: 5 * time.Second}
			post := func(i, k int) (string, bool) {
				body := fmt.Sprintf(`{"content":"%d","client_message_id":"v%d-%d"}`, k, i, k)
				req, _ := http.NewRequest(http.MethodPost, e.base+"/chat/conversation/"+convs[i], strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token(t, auth.Visitor, "shop", fmt.Sprint("v", i)))
				resp, err := client.Do(req)
				if err != nil {
					return "", false
				}
				defer resp.Body.Close()
				var out struct{ Message struct{ ID string } }
				if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
					return "", false
				}
				return out.Message.ID, true
			}
			var acked atomic.Int64
			ids := make([][]string, senders)
			var wg sync.WaitGroup
			for i := 0; i < senders; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					deadline := time.Now().Add(2 * time.Minute)
					for k := 0; k < perSender; k++ {
						for {
							if id, ok := post(i, k); ok {
								ids[i] = append(ids[i], id)
								acked.Add(1)
								break
							}
							if time.Now().After(deadline) {
								t.Errorf("sender %d: post %d never acknowledged", i, k)
								return
							}
							time.Sleep(20 * time.Millisecond) // down: retry the same post
						}
					}
				}(i)
			}
			kills := 0
			for _, at := range []int64{senders * perSender / 4, senders * perSender / 2, 3 * senders * perSender / 4} {
				for acked.Load() < at {
					time.Sleep(time.Millisecond)
				}
				srv.stop(run.signal)
				kills++
				srv = runServer(t, bin, dir, vars)
			}
			wg.Wait()

			for i := 0; i < senders; i++ {
				r := want(t, e.post("/chat/conversation/"+convs[i]+"/messages", token(t, auth.Visitor, "shop", fmt.Sprint("v", i)), map[string]any{"count": 1000}), http.StatusOK)
				msgs := r.body["messages"].([]any)
				if len(msgs) != perSender {
					t.Fatalf("sender %d: %d messages stored, want %d (duplicates or losses)", i, len(msgs), perSender)
				}
				stored := map[string]bool{}
				for j, m := range msgs { // newest first
					m := m.(map[string]any)
					if want := fmt.Sprint(perSender - 1 - j); m["content"] != want {
						t.Fatalf("sender %d: message %d is %v, want %s: order broken", i, j, m["content"], want)
					}
					stored[m["id"].(string)] = true
				}
				for _, id := range ids[i] {
					if !stored[id] {
						t.Fatalf("sender %d: acknowledged message %s is lost", i, id)
					}
				}
			}
			t.Logf("%s: %d posts acknowledged across %d restarts by %s, all stored once, in order", backend, acked.Load(), kills, run.signal)
		})
	}
}
