//go:build linux

package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/faye"
	"github.com/convead/chat-server/faye/bayeux"
)

// The engine's collaborators for tests of the transport alone: everything allowed, a broker
// that hands publishes straight back to the engine as the real one does.
type allowAll struct{}

func (allowAll) CanSubscribe(context.Context, auth.Identity, string) error { return nil }
func (allowAll) CanPublish(context.Context, auth.Identity, string) error   { return nil }
func (allowAll) MayReceive(auth.Identity, string) bool                     { return true }
func (allowAll) Verify(string) (auth.Identity, error) {
	return auth.Identity{Subject: "s", Role: auth.Service, Org: "shop"}, nil
}
func (allowAll) Subscribed(auth.Identity, string, string)   {}
func (allowAll) Unsubscribed(auth.Identity, string, string) {}
func (allowAll) Gone(string)                                {}

type loopback struct{ e *faye.Engine }

func (b *loopback) Publish(org, name string, payload []byte) error {
	topic, err := channel.ToTopic(org, name)
	if err != nil {
		return err
	}
	b.e.Deliver(topic, payload)
	return nil
}

func testEngine(tb testing.TB, maxQueue int) *faye.Engine {
	b := &loopback{}
	e := faye.New(faye.Config{Timeout: 45 * time.Second, IdleTimeout: time.Minute, Ping: 20 * time.Second, MaxBatch: 100, MaxChannels: 100, MaxQueue: maxQueue},
		allowAll{}, allowAll{}, allowAll{}, b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.e = e
	return e
}

// socketFleet is n websockets of the engine's transport on real loopback connections, each
// bound to a session subscribed to name; a reader per client counts the '{' it receives (one
// for the connect reply, then one per delivery of a string).
type socketFleet struct {
	e      *faye.Engine
	braces atomic.Int64
	wg     sync.WaitGroup
	close  func()
}

func newSocketFleet(tb testing.TB, n int, name string) *socketFleet {
	e := testEngine(tb, 1<<20)
	h := newHandler(e, Config{MaxFrameBytes: 1 << 20})
	rx, err := h.loop()
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &socketFleet{e: e}
	var clients []net.Conn
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			tb.Fatal(err)
		}
		clients = append(clients, c)
		w, err := h.serveConn(rx, sc, faye.Peer{IP: "127.0.0.1"})
		if err != nil {
			tb.Fatal(err)
		}
		w.bind(subscribedConnect(tb, e, name))
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			r := bufio.NewReaderSize(c, 64<<10)
			for {
				payload, err := readServerFrame(r)
				if err != nil {
					return
				}
				f.braces.Add(int64(bytes.Count(payload, []byte("{"))))
			}
		}()
	}
	f.close = func() {
		h.closeLoop()
		for _, c := range clients {
			c.Close()
		}
		ln.Close()
		f.wg.Wait()
	}
	return f
}

// process runs a batch of a client holding the token "t" on the engine.
func process(tb testing.TB, e *faye.Engine, batch string) ([]bayeux.Reply, *faye.Connect) {
	msgs, err := bayeux.DecodeBatch([]byte(batch), 100)
	if err != nil {
		tb.Fatal(err)
	}
	return e.Process(context.Background(), nil, msgs, bayeux.WebSocket, faye.Peer{IP: "127.0.0.1"})
}

// subscribed opens a session with the token "t", subscribed to name, and returns its id.
func subscribed(tb testing.TB, e *faye.Engine, name string) string {
	replies, _ := process(tb, e, `[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"ext":{"token":"t"}}]`)
	id := replies[0].ClientID
	if replies, _ := process(tb, e, `[{"channel":"/meta/subscribe","clientId":"`+id+`","subscription":"`+name+`","ext":{"token":"t"}}]`); !replies[0].Successful {
		tb.Fatalf("subscribe: %+v", replies[0])
	}
	return id
}

// subscribedConnect opens a session subscribed to name and returns its connect, to be
// answered at once with a reply of one '{'.
func subscribedConnect(tb testing.TB, e *faye.Engine, name string) *faye.Connect {
	id := subscribed(tb, e, name)
	_, c := process(tb, e, `[{"channel":"/meta/connect","clientId":"`+id+`","connectionType":"websocket","advice":{"timeout":0},"ext":{"token":"t"}}]`)
	if c == nil || c.Wait != 0 {
		tb.Fatalf("connect: %+v", c)
	}
	c.Reply = bayeux.Reply{Channel: bayeux.Connect, Successful: true}
	return c
}

// readServerFrame reads one unmasked frame's payload.
func readServerFrame(r *bufio.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r, p)
	return p, err
}

// waitBraces waits until the clients received want '{' (one per delivery of a string payload).
func (f *socketFleet) waitBraces(tb testing.TB, want int64) {
	deadline := time.Now().Add(time.Minute)
	for f.braces.Load() < want {
		if time.Now().After(deadline) {
			tb.Fatalf("clients got %d deliveries of %d", f.braces.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFanOutOverSockets: every publish reaches every socket once, whatever the batching.
func TestFanOutOverSockets(t *testing.T) {
	const clients, publishes = 50, 200
	f := newSocketFleet(t, clients, "/fan")
	defer f.close()
	for i := range publishes {
		f.e.Deliver("orgs/shop/fan", []byte(fmt.Sprintf(`"m%d"`, i)))
	}
	f.waitBraces(t, clients*(publishes+1))
	time.Sleep(50 * time.Millisecond)
	if got := f.braces.Load(); got != clients*(publishes+1) {
		t.Fatalf("%d deliveries and replies, want %d", got, clients*(publishes+1))
	}
}

// BenchmarkFanOut: one publish to 1,000 websocket sessions, written to real loopback sockets
// (the clients read in the same process, so ns/op includes their reads).
//
//	go test ./faye/transport -run '^$' -bench FanOut -cpuprofile cpu.out
func BenchmarkFanOut(b *testing.B) {
	const clients = 1000
	f := newSocketFleet(b, clients, "/fan")
	defer f.close()
	f.waitBraces(b, clients)
	f.braces.Add(-clients)
	payload := []byte(`"hello, this is a chat message of a typical length"`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f.e.Deliver("orgs/shop/fan", payload)
		if i%16 == 15 { // bounded queues: wait for the clients now and then
			f.waitBraces(b, int64(i+1-8)*clients)
		}
	}
	f.waitBraces(b, int64(b.N)*clients)
	b.ReportMetric(float64(b.N)*clients/b.Elapsed().Seconds(), "deliveries/s")
}
