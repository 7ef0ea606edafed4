//go:build linux

package transport

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/origin"
)

// TestEventSourceStalledReaderIsCut: an EventSource client that never reads while deliveries
// are published is cut after writeTimeout, as a websocket is, not kept for streamTimeout.
func TestEventSourceStalledReaderIsCut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the write timeout")
	}
	e := testEngine(t, 1<<20)
	app := fiber.New(fiber.Config{WriteTimeout: time.Second, DisableStartupMessage: true})
	if err := Register(app, e, Config{Mount: "/faye", Origins: origin.NewRegistry(origin.NewPolicy(nil)), MaxFrameBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })

	id := subscribed(t, e, "/es")

	// A small receive buffer, so that the server's writes stall soon.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /faye/%s HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nAuthorization: Bearer t\r\n\r\n", id)
	r := bufio.NewReader(c)
	status, err := r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 200 ") {
		t.Fatalf("stream: %q %v", status, err)
	}
	payload := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	for range 256 { // 16 MiB: far more than the socket buffers hold
		e.Deliver("orgs/shop/es", payload)
	}
	time.Sleep(writeTimeout + 3*time.Second)
	// Cut, the stream ends once what was in flight is read; kept, the server goes on
	// writing the queue as soon as the client reads.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stream of a client that stopped reading was still open after %v (%d bytes read)", writeTimeout+3*time.Second, n)
	}
}
