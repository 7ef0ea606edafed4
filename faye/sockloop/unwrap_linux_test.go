//go:build linux

package sockloop

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// netConnWrapper stands for the server's per-address counter: a wrapper that names its
// connection through NetConn.
type netConnWrapper struct{ net.Conn }

func (w netConnWrapper) NetConn() net.Conn { return w.Conn }

type wrappingListener struct{ net.Listener }

func (l wrappingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return netConnWrapper{c}, nil
}

// TestUnwrapHijacked: the websocket loop finds the descriptor of a connection fasthttp hands
// over on hijack, under a NetConn wrapper, and closes through that wrapper. It fails when
// fasthttp stops offering UnsafeConn on its hijacked connection.
func TestUnwrapHijacked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(nc net.Conn) {
			if _, ok := nc.(interface{ UnsafeConn() net.Conn }); !ok {
				got <- fmt.Errorf("fasthttp's hijacked connection %T has no UnsafeConn", nc)
				return
			}
			outer, sc := unwrap(nc)
			_, counted := outer.(netConnWrapper)
			switch {
			case sc == nil:
				got <- fmt.Errorf("no descriptor under %T", nc)
			case !counted:
				got <- fmt.Errorf("Close would go to %T, not to the counting wrapper", outer)
			default:
				got <- nil
			}
		})
	}}
	go func() { _ = srv.Serve(wrappingListener{ln}) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not hijack the connection")
	}
}
