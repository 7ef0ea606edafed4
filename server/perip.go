package server

import (
	"net"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/ratelimit"
)

// perIPListener bounds open HTTP connections per client address (limits.connections_per_ip)
// in place of fasthttp's MaxConnsPerIP: its wrapper hides the TCP connection that the Faye
// websocket loop needs, while ours hands it out (NetConn, as crypto/tls does).
type perIPListener struct {
	net.Listener
	conns *ratelimit.Counter
}

// rejection is what a connection over the limit reads before it is closed.
const rejection = "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: 39\r\n\r\nToo many connections from your address\n"

func limitPerIP(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		return ln
	}
	return &perIPListener{Listener: ln, conns: ratelimit.NewCounter(max)}
}

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if ip == "" {
			return c, nil // nothing to count it by
		}
		if !l.conns.Acquire(ip) {
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(rejection))
			_ = c.Close()
			continue
		}
		return &perIPConn{Conn: c, ip: ip, conns: l.conns}, nil
	}
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// perIPConn gives its address's slot back when closed.
type perIPConn struct {
	net.Conn
	ip     string
	conns  *ratelimit.Counter
	closed atomic.Bool
}

func (c *perIPConn) Close() error {
	err := c.Conn.Close()
	if !c.closed.Swap(true) {
		c.conns.Release(c.ip)
	}
	return err
}

// NetConn returns the TCP connection, for the Faye websocket loop's descriptor.
func (c *perIPConn) NetConn() net.Conn { return c.Conn }
