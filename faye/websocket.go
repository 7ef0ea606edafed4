package faye

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"

	"github.com/convead/chat-server/faye/bayeux"
)

// writeTimeout bounds one websocket write: a client that stops reading is cut off instead of
// holding its goroutine (and its queue) forever.
const writeTimeout = 10 * time.Second

// wsConn is one websocket: frames in are batches; replies, deliveries and pings go out. It
// serves the session that last sent /meta/connect over it.
type wsConn struct {
	h    *handler
	conn *websocket.Conn

	mu      sync.Mutex // guards the fields below and every write to conn
	closed  bool
	sess    *session
	cons    *consumer
	release func()
	held    *time.Timer // the held /meta/connect reply
	heldFor *bayeux.Reply
}

func (h *handler) serveWebSocket(conn *websocket.Conn) {
	w := &wsConn{h: h, conn: conn}
	defer w.close()
	conn.SetReadLimit(int64(h.cfg.MaxFrameBytes))
	// A live client sends a connect at least every Timeout and answers pings; a half-open
	// connection is cut after this long without a frame.
	idle := h.e.cfg.Timeout + 3*h.e.cfg.Ping
	_ = conn.SetReadDeadline(time.Now().Add(idle))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(idle)) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	peer := Peer{IP: conn.IP(), Origin: conn.Headers("Origin"), Host: conn.Headers("Host")}
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(idle))
		if kind != websocket.TextMessage {
			continue
		}
		msgs, err := bayeux.DecodeBatch(data, h.e.cfg.MaxBatch)
		if errors.Is(err, bayeux.ErrTooMany) {
			w.closeWith(websocket.ClosePolicyViolation, "too many messages in one batch")
			return
		}
		if err != nil {
			continue // Faye ignores frames that are not a JSON batch
		}
		replies, connect := h.e.Process(ctx, msgs, bayeux.WebSocket, peer)
		if connect != nil {
			w.bind(connect)
		}
		if len(replies) > 0 || connect == nil {
			if !w.write(bayeux.EncodeBatch(replies, nil)) {
				return
			}
		}
	}
}

// bind attaches the connect's session to this socket (pushing its deliveries from now on) and
// holds the connect reply for its wait.
func (w *wsConn) bind(c *Connect) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	live := w.cons != nil
	if live {
		select {
		case <-w.cons.done:
			live = false
		default:
		}
	}
	if w.sess != c.Session || !live {
		if w.release != nil {
			w.release()
		}
		w.sess = c.Session
		w.cons, w.release = w.h.e.Stream(c.Session)
		if w.cons != nil {
			go w.pump(c.Session, w.cons)
		}
	}
	if w.held != nil { // a new connect replaces the held one, which is answered now
		w.held.Stop()
		w.writeLocked(bayeux.EncodeBatch([]bayeux.Reply{*w.heldFor}, nil))
		w.held, w.heldFor = nil, nil
	}
	if c.Wait <= 0 {
		w.writeLocked(bayeux.EncodeBatch([]bayeux.Reply{c.Reply}, nil))
		return
	}
	reply := c.Reply
	w.heldFor = &reply
	var t *time.Timer
	t = time.AfterFunc(c.Wait, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.held == t && !w.closed {
			w.writeLocked(bayeux.EncodeBatch([]bayeux.Reply{*w.heldFor}, nil))
			w.held, w.heldFor = nil, nil
		}
	})
	w.held = t
}

// pump pushes a session's deliveries and pings until the session leaves this socket.
func (w *wsConn) pump(s *session, c *consumer) {
	tick := time.NewTicker(w.h.e.cfg.Ping)
	defer tick.Stop()
	for {
		select {
		case <-c.wake:
			if msgs := s.take(); len(msgs) > 0 && !w.write(bayeux.EncodeBatch(nil, msgs)) {
				return
			}
		case <-tick.C:
			w.mu.Lock()
			if w.closed { // the handler returned: its conn is released, not ours to touch
				w.mu.Unlock()
				return
			}
			err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout))
			w.mu.Unlock()
			if err != nil {
				w.close()
				return
			}
		case <-c.done:
			s.mu.Lock()
			ended := s.closed
			s.mu.Unlock()
			if ended { // disconnected, expired, or the server stops: Faye closes the socket too
				w.closeWith(websocket.CloseNormalClosure, "")
			}
			return
		}
	}
}

func (w *wsConn) write(frame []byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(frame)
}

func (w *wsConn) writeLocked(frame []byte) bool {
	if w.closed {
		return false
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := w.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		w.closeLocked()
		return false
	}
	return true
}

func (w *wsConn) closeWith(code int, reason string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	}
	w.closeLocked()
}

func (w *wsConn) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closeLocked()
}

// closeLocked ends the socket: the held reply is dropped, and the session is released, which
// takes a manager off duty at once.
func (w *wsConn) closeLocked() {
	if w.closed {
		return
	}
	w.closed = true
	if w.held != nil {
		w.held.Stop()
		w.held, w.heldFor = nil, nil
	}
	if w.release != nil {
		w.release()
		w.release = nil
	}
	_ = w.conn.Close()
}
