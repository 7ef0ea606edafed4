package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/convead/chat-server/faye/wsframe"
)

// wsConn is the client end of a websocket (RFC 6455) that carries text messages. It is set
// up over a net.Conn with deadlines; then detach takes its socket out of Go's network
// poller and a poller reads it with one recv per arrival. Go's net.Conn reads once more
// after every message and parks on EAGAIN: two system calls per delivery, which on a
// two-core machine took CPU from the server measured (see docs/profiles/README.md).
type wsConn struct {
	conn net.Conn // during setup; nil once detached
	fd   int      // the detached socket, or -1

	in  []byte // bytes received; those before off are taken
	off int
	msg []byte // a fragmented message being assembled
	err error  // a protocol error found while framing

	wmu  sync.Mutex
	wbuf []byte
}

const (
	wsMaxMessage   = 16 << 20 // a bigger message from the server is an error: nothing sends one
	wsReadChunk    = 4096
	wsWriteTimeout = 10 * time.Second
)

var errWSClosed = errors.New("websocket closed by the server")

// dialWS opens a websocket to rawURL (ws://host:port/path).
func dialWS(ctx context.Context, rawURL string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "ws" || u.Host == "" {
		return nil, fmt.Errorf("websocket address %q: want ws://host:port/path", rawURL)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", rawURL, err)
	}
	c := &wsConn{conn: conn, fd: -1}
	if err := c.handshake(u); err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket handshake with %s: %w", rawURL, err)
	}
	return c, nil
}

func (c *wsConn) handshake(u *url.URL) error {
	_ = c.conn.SetDeadline(time.Now().Add(setupTimeout))
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	path := u.RequestURI()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c.conn, req); err != nil {
		return err
	}
	var head []byte
	for {
		if i := bytes.Index(c.in, []byte("\r\n\r\n")); i >= 0 {
			head, c.off = bytes.Clone(c.in[:i]), i+4
			break
		}
		if len(c.in) > 16<<10 {
			return errors.New("response header over 16 KB")
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	lines := bytes.Split(head, []byte("\r\n"))
	if f := bytes.Fields(lines[0]); len(f) < 2 || string(f[1]) != "101" {
		return fmt.Errorf("server answered %q, not 101", lines[0])
	}
	want := wsframe.AcceptKey(key)
	for _, l := range lines[1:] {
		name, value, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")) {
			if got := string(bytes.TrimSpace(value)); got != want {
				return fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, want)
			}
			return nil
		}
	}
	return errors.New("no Sec-WebSocket-Accept in the answer")
}

// fill reads once from the set-up connection into c.in.
func (c *wsConn) fill() error {
	c.room()
	n, err := c.conn.Read(c.in[len(c.in):cap(c.in)])
	c.in = c.in[:len(c.in)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// room moves the bytes not yet taken to the front of c.in and makes sure that a read of
// wsReadChunk bytes fits after them.
func (c *wsConn) room() {
	if c.off > 0 {
		c.in = c.in[:copy(c.in, c.in[c.off:])]
		c.off = 0
	}
	if cap(c.in)-len(c.in) < wsReadChunk {
		c.in = append(make([]byte, 0, len(c.in)+max(wsReadChunk, len(c.in))), c.in...)
	}
}

// receive reads what has arrived on the detached socket and hands each message to handle,
// until the socket is drained: a read shorter than the room offered means the kernel's queue
// was empty, and the next arrival raises a new edge on the poller. No read ends in EAGAIN
// but the rare one after a read that filled the room exactly.
func (c *wsConn) receive(handle func(msg []byte)) error {
	for {
		c.room()
		free := cap(c.in) - len(c.in)
		n, err := unix.Read(c.fd, c.in[len(c.in):cap(c.in)])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return nil
		case err != nil:
			return fmt.Errorf("read: %w", err)
		case n == 0:
			return io.EOF
		}
		c.in = c.in[:len(c.in)+n]
		if err := c.handleAll(handle); err != nil {
			return err
		}
		if n < free {
			return nil
		}
	}
}

// handleAll hands every whole message received so far to handle.
func (c *wsConn) handleAll(handle func(msg []byte)) error {
	for {
		msg, ok, err := c.next()
		if err != nil || !ok {
			return err
		}
		handle(msg)
	}
}

// readMessage returns the next text message during setup, reading as needed.
func (c *wsConn) readMessage() ([]byte, error) {
	for {
		msg, ok, err := c.next()
		if err != nil || ok {
			return msg, err
		}
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
}

// next takes the next whole message out of the bytes received: ok is false when more bytes
// are needed. Pings are answered, pongs dropped, a close frame ends the connection. The
// message is valid until the next call.
func (c *wsConn) next() (msg []byte, ok bool, err error) {
	for {
		if c.err != nil {
			return nil, false, c.err
		}
		b := c.in[c.off:]
		if len(b) < 2 {
			return nil, false, nil
		}
		fin, op := b[0]&0x80 != 0, b[0]&0x0f
		if b[1]&0x80 != 0 {
			c.err = errors.New("masked frame from the server")
			continue
		}
		n, hdr := uint64(b[1]&0x7f), 2
		switch n {
		case 126:
			if len(b) < 4 {
				return nil, false, nil
			}
			n, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				return nil, false, nil
			}
			n, hdr = binary.BigEndian.Uint64(b[2:]), 10
		}
		if n > wsMaxMessage || uint64(len(c.msg))+n > wsMaxMessage {
			c.err = fmt.Errorf("message over %d bytes", wsMaxMessage)
			continue
		}
		if uint64(len(b)-hdr) < n {
			return nil, false, nil
		}
		payload := b[hdr : hdr+int(n)]
		c.off += hdr + int(n)
		switch op {
		case wsframe.OpPing:
			if err := c.writeFrame(wsframe.OpPong, payload); err != nil {
				return nil, false, err
			}
		case wsframe.OpPong:
		case wsframe.OpClose:
			c.err = errWSClosed
		case wsframe.OpContinuation, wsframe.OpText, wsframe.OpBinary:
			cont := op == wsframe.OpContinuation
			if fin && c.msg == nil && !cont {
				return payload, true, nil
			}
			if cont != (c.msg != nil) {
				c.err = errors.New("fragments out of order")
				continue
			}
			if c.msg == nil {
				c.msg = make([]byte, 0, len(payload)) // non-nil even for an empty first fragment
			}
			c.msg = append(c.msg, payload...)
			if fin {
				msg, c.msg = c.msg, nil
				return msg, true, nil
			}
		default:
			c.err = fmt.Errorf("unknown opcode %#x", op)
		}
	}
}

// writeText sends one text message.
func (c *wsConn) writeText(payload []byte) error { return c.writeFrame(wsframe.OpText, payload) }

func (c *wsConn) writeFrame(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := wsframe.AppendHeader(c.wbuf[:0], op, len(payload))
	b[1] |= 0x80 // a client masks every frame
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	for i := range b[start:] {
		b[start+i] ^= mask[i&3]
	}
	c.wbuf = b
	if c.conn != nil {
		_ = c.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
		_, err := c.conn.Write(b)
		return err
	}
	deadline := time.Now().Add(wsWriteTimeout)
	for len(b) > 0 {
		n, err := unix.Write(c.fd, b)
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			// The socket's send buffer is full: wait until it drains, within the deadline.
			wait := time.Until(deadline)
			if wait <= 0 {
				return errors.New("write: timed out")
			}
			pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(pfd, int(wait.Milliseconds())+1); err != nil && err != unix.EINTR {
				return fmt.Errorf("poll: %w", err)
			}
		case err != nil:
			return fmt.Errorf("write: %w", err)
		default:
			b = b[n:]
		}
	}
	return nil
}

// detach takes the socket from Go's network poller: a duplicate of it stays (non-blocking,
// as Go left it), and the net.Conn is closed, which removes the original from the runtime's
// epoll set without ending the connection.
func (c *wsConn) detach() error {
	tcp, ok := c.conn.(*net.TCPConn)
	if !ok {
		return fmt.Errorf("detach a %T: not TCP", c.conn)
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.Dup(int(s)) }); err != nil {
		return err
	}
	if dupErr != nil {
		return fmt.Errorf("dup: %w", dupErr)
	}
	c.wmu.Lock()
	c.conn.Close()
	c.conn, c.fd = nil, fd
	c.wmu.Unlock()
	return nil
}

// shutdown ends a detached connection in both directions: its poller reads the end and
// closes the socket.
func (c *wsConn) shutdown() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.fd >= 0 {
		_ = unix.Shutdown(c.fd, unix.SHUT_RDWR)
	}
}

// close releases the socket.
func (c *wsConn) close() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}
