package sockloop

import (
	"bytes"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// recorder is a Handler that keeps what it was told.
type recorder struct {
	mu     sync.Mutex
	c      *Conn
	got    bytes.Buffer
	hungUp chan struct{}
}

func (r *recorder) Data(p []byte) Next {
	r.mu.Lock()
	r.got.Write(p)
	r.mu.Unlock()
	return Read
}
func (r *recorder) Writable()  {}
func (r *recorder) Tick(int64) {}
func (r *recorder) Hangup()    { r.c.Close(); close(r.hungUp) }
func (r *recorder) Stop()      { r.c.Close() }

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.got.Bytes())
}

// serve starts a loop and returns a client connected to a socket it serves.
func serve(t *testing.T) (net.Conn, *recorder) {
	t.Helper()
	l, err := New(Config{Tick: 50 * time.Millisecond, WriteTimeout: time.Second, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{hungUp: make(chan struct{})}
	if err := l.Add(sc, func(c *Conn) Handler { r.c = c; return r }); err != nil {
		t.Fatal(err)
	}
	return client, r
}

// TestReadsEverythingThenHangup: bytes sent in pieces, with pauses between them (each read
// returns less than the buffer, and the loop waits for the next edge), then sent with the
// end of the stream right behind them (one edge for both), all arrive, and the end is told.
func TestReadsEverythingThenHangup(t *testing.T) {
	for range 20 {
		client, r := serve(t)
		var want []byte
		for i := range 5 {
			piece := bytes.Repeat([]byte{byte('a' + i)}, 100*(i+1))
			want = append(want, piece...)
			if _, err := client.Write(piece); err != nil {
				t.Fatal(err)
			}
			if i < 3 {
				time.Sleep(2 * time.Millisecond)
			}
		}
		big := bytes.Repeat([]byte("z"), 100<<10) // more than one read buffer
		want = append(want, big...)
		if _, err := client.Write(big); err != nil {
			t.Fatal(err)
		}
		_ = client.Close()
		select {
		case <-r.hungUp:
		case <-time.After(5 * time.Second):
			t.Fatalf("no hangup after the client closed; %d of %d bytes read", len(r.bytes()), len(want))
		}
		if got := r.bytes(); !bytes.Equal(got, want) {
			t.Fatalf("read %d bytes, want %d (or they differ)", len(got), len(want))
		}
	}
}
