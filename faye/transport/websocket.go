package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/faye"
	"github.com/convead/chat-server/faye/bayeux"
	"github.com/convead/chat-server/faye/sockloop"
	"github.com/convead/chat-server/faye/wsframe"
)

// The websocket transport is built for many idle clients and wide fan-out. After the upgrade
// the connection leaves fasthttp: an event loop (package sockloop: epoll on Linux) reads
// sockets when they are readable, so an idle client holds no goroutine and no buffer, only
// its wsConn. Complete text frames go to a goroutine that lives while the client's messages
// are processed. Deliveries are queued on the session; a small fan-out (a conversation) is
// written by the publishing goroutine, a wide one by the loop's writer, several deliveries per
// frame when they pile up. Writes never block: what a socket does not take waits for it to
// become writable, so a slow socket cannot slow a publish. Timers (held connects, pings, idle
// and stalled sockets) are one sweep per loop.

const (
	// writeTimeout bounds how long a socket may refuse our bytes before it is cut: a client
	// that stops reading must not hold its queue forever.
	writeTimeout = 10 * time.Second
	// maxInbox complete messages wait for processing before reading a socket pauses (TCP then
	// pushes back on the client).
	maxInbox = 8
	// maxCork bounds the replies held back while more messages wait for processing: beyond,
	// they are written at once.
	maxCork = 16 << 10
	// closeLinger is how long a closed socket is drained for the client's close frame before
	// its descriptor is closed (closing with unread bytes would reset the connection and
	// could destroy our close frame in flight).
	closeLinger = 2 * time.Second
)

// Buffers are taken for one frame and given back at once: idle sockets own none.
var (
	scratchPool = sync.Pool{New: func() any { return new(scratch) }}
	framePool   = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// scratch is a goroutine's reusable space for processing a batch and building frames.
type scratch struct {
	in      []bayeux.Message // a batch, decoded
	replies []bayeux.Reply
	msgs    [][]byte // queued deliveries
	buf     []byte   // a frame
	enc     []byte   // a batch of replies, before it is framed
}

// wsConn is one websocket: the loop's Handler of its connection. It serves the session that
// last sent /meta/connect over it. Thousands of them sit idle: it is laid out to fit 224
// bytes (flags together, one deadline field for two states that never overlap, what reads
// left incomplete allocated only while there is some).
type wsConn struct {
	c    *sockloop.Conn
	h    *handler
	peer faye.Peer

	lastRead  atomic.Int64 // unix nanoseconds of the last bytes read
	inProcess atomic.Bool  // a batch is processed: its replies take the deliveries it caused

	// The reading side, touched by Data alone (one call at a time).
	rd *unfinished // nil while the reads left nothing incomplete

	// The messages read and not processed yet. Never taken with mu.
	imu    sync.Mutex
	inbox  [][]byte // complete text messages waiting for processing
	busy   bool     // a goroutine processes the inbox
	paused bool     // reading waits for the inbox to drain

	// The writing side and the session binding.
	closed     bool // nothing more is written or processed
	corked     bool // more messages wait for processing: their replies join out, written after the last
	processing bool // a batch is being processed: a session end waits for its replies
	endAfter   bool // the session ended during the batch: close after its replies
	releaseDue bool // the socket let go of its session: unlock releases bound, outside mu
	mu         sync.Mutex
	out        []byte // framed bytes the socket did not take yet, or held back by corked
	stalledAt  int64  // since when out is not empty
	cons       *faye.Consumer
	bound      *faye.Consumer // to Release: cons, or what is left of it once Ended
	held       []byte         // the held connect's reply, encoded: it keeps nothing of the request alive
	deadline   int64          // open: when the held reply is due; closed: when the socket is disposed of
	pingAt     int64
}

// unfinished is what a socket's reads left incomplete: the start of a frame, a message in
// fragments. An idle socket has neither, so it holds one pointer for both rather than their
// 32 bytes.
type unfinished struct {
	frame []byte             // an incomplete frame, as much of it as arrived
	asm   *wsframe.Assembler // a fragmented message, while its fragments arrive
}

// isUpgrade reports whether a request asks for a websocket.
func isUpgrade(c *fiber.Ctx) bool {
	return hasToken(c.Get(fiber.HeaderConnection), "upgrade") && hasToken(c.Get(fiber.HeaderUpgrade), "websocket")
}

func hasToken(header, token string) bool {
	for _, t := range strings.Split(header, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// upgrade answers a websocket handshake (RFC 6455 section 4.2) and takes the connection off
// fasthttp. The origin policy was applied by serve.
func (h *handler) upgrade(c *fiber.Ctx) error {
	key := c.Get(fiber.HeaderSecWebSocketKey)
	switch {
	case c.Method() != fiber.MethodGet:
		return c.Status(fiber.StatusMethodNotAllowed).SendString("websocket: the handshake is a GET")
	case !hasToken(c.Get(fiber.HeaderSecWebSocketVersion), "13"):
		c.Set(fiber.HeaderSecWebSocketVersion, "13")
		return c.Status(fiber.StatusUpgradeRequired).SendString("websocket: version 13 only")
	case !wsframe.ValidKey(key):
		return badRequest(c)
	}
	rx, err := h.loop()
	if err != nil {
		h.log.Error("faye: websocket event loop", "err", err.Error())
		return c.Status(fiber.StatusServiceUnavailable).SendString("websocket unavailable")
	}
	peer := faye.Peer{IP: strings.Clone(c.IP()), Origin: strings.Clone(c.Get(fiber.HeaderOrigin)), Host: string(c.Request().Host())}
	response := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wsframe.AcceptKey(key) + "\r\n\r\n")
	ctx := c.Context()
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(nc net.Conn) {
		// The client sends nothing before our answer (RFC 6455 section 4.1), so nothing is
		// left in fasthttp's read buffer.
		_ = nc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := nc.Write(response); err != nil {
			_ = nc.Close()
			return
		}
		_ = nc.SetWriteDeadline(time.Time{})
		if _, err := h.serveConn(rx, nc, peer); err != nil {
			h.log.Warn("faye: websocket not served", "err", err.Error(), "remote", peer.IP)
			_ = nc.Close()
		}
	})
	return nil
}

// loop returns the event loop, started on the first websocket. Its sweep of the sockets'
// timers is fine enough for pings and held connects, and cheap for 10k sockets.
func (h *handler) loop() (*sockloop.Loop, error) {
	h.rxOnce.Do(func() {
		tick := min(max(min(h.ecfg.Ping, h.ecfg.Timeout)/10, 10*time.Millisecond), 250*time.Millisecond)
		h.rx, h.rxErr = sockloop.New(sockloop.Config{Tick: tick, WriteTimeout: writeTimeout, Log: h.log})
		if h.rxErr == nil {
			h.ctx, h.stop = context.WithCancel(context.Background())
			h.e.OnStop(h.closeLoop)
		}
	})
	return h.rx, h.rxErr
}

// closeLoop ends message processing, then every socket (their sessions ended first, with a
// normal closure) and the loop.
func (h *handler) closeLoop() {
	h.stop()
	h.rx.Close()
}

// serveConn serves an upgraded connection on the loop.
func (h *handler) serveConn(rx *sockloop.Loop, nc net.Conn, peer faye.Peer) (*wsConn, error) {
	var w *wsConn
	err := rx.Add(nc, func(c *sockloop.Conn) sockloop.Handler {
		w = &wsConn{c: c, h: h, peer: peer}
		w.lastRead.Store(time.Now().UnixNano())
		return w
	})
	return w, err
}

// idle is how long a socket may stay silent: a live client sends a connect at least every
// Timeout and answers pings.
func (w *wsConn) idle() int64 { return int64(w.h.ecfg.Timeout + 3*w.h.ecfg.Ping) }

// maxOut bounds the bytes waiting for a socket (a frame of replies or of a full queue).
func (w *wsConn) maxOut() int { return 4 * max(w.h.cfg.MaxFrameBytes, 64<<10) }

// unlock releases mu, then releases a session the socket let go of while locked (that takes
// the session's lock, and the duty registry's).
func (w *wsConn) unlock() {
	var rel *faye.Consumer
	if w.releaseDue {
		rel, w.bound, w.releaseDue = w.bound, nil, false
	}
	w.mu.Unlock()
	if rel != nil {
		w.h.e.Release(rel)
	}
}

// Data parses the bytes a read returned and tells the loop whether to read on.
func (w *wsConn) Data(p []byte) sockloop.Next {
	w.lastRead.Store(time.Now().UnixNano())
	code, reason := w.feed(p)
	if code != 0 {
		w.closeWith(code, reason)
	}
	w.imu.Lock()
	paused := w.paused
	w.imu.Unlock()
	switch {
	case paused:
		return sockloop.Pause
	case code != 0:
		return sockloop.Stop
	}
	return sockloop.Read
}

// Writable writes what waits, when the socket may take it.
func (w *wsConn) Writable() {
	sc := scratchPool.Get().(*scratch)
	w.flush(sc)
	sc.release()
}

// Hangup ends the socket whose stream ended.
func (w *wsConn) Hangup() { w.abort(0, "") }

// Stop ends the socket of a stopping server.
func (w *wsConn) Stop() { w.abort(wsframe.CloseGoingAway, "the server stops") }

// feed parses the bytes a read returned; a code means: close with it.
func (w *wsConn) feed(data []byte) (code int, reason string) {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed { // draining until the client's close or EOF
		w.rd = nil
		return 0, ""
	}
	var partial []byte // the frame an earlier read left incomplete, continued
	if w.rd != nil && len(w.rd.frame) > 0 {
		partial = append(w.rd.frame, data...)
		w.rd.frame, data = partial, partial
	}
	for len(data) > 0 {
		f, n, err := wsframe.Parse(data, w.h.cfg.MaxFrameBytes)
		switch {
		case errors.Is(err, wsframe.ErrShort):
			switch {
			case len(partial) > 0 && &data[0] == &partial[0]: // kept as it is
			case len(partial) > 0: // the tail of the buffer holds the start of a frame
				w.rd.frame = partial[:copy(partial, data)]
			default:
				// Sized by the bytes that arrived, never by the length the header announces:
				// a few bytes claiming a megabyte must not take a megabyte.
				w.incomplete().frame = bytes.Clone(data)
			}
			return 0, ""
		case errors.Is(err, wsframe.ErrTooBig):
			return wsframe.CloseMessageTooBig, "message too big"
		case err != nil:
			return wsframe.CloseProtocolError, err.Error()
		}
		data = data[n:]
		if code, reason := w.frame(f); code != 0 {
			return code, reason
		}
	}
	if w.rd != nil {
		w.rd.frame = nil
		w.tidy()
	}
	return 0, ""
}

// incomplete returns the state of what the reads left incomplete, allocated if need be.
func (w *wsConn) incomplete() *unfinished {
	if w.rd == nil {
		w.rd = new(unfinished)
	}
	return w.rd
}

// tidy lets the state of incomplete reads go once nothing is left in it.
func (w *wsConn) tidy() {
	if w.rd != nil && len(w.rd.frame) == 0 && w.rd.asm == nil {
		w.rd = nil
	}
}

// frame handles one parsed frame.
func (w *wsConn) frame(f wsframe.Frame) (code int, reason string) {
	var ce *wsframe.CloseError
	switch f.Op {
	case wsframe.OpPing:
		w.mu.Lock()
		w.sendFrameLocked(wsframe.OpPong, f.Payload)
		w.unlock()
	case wsframe.OpPong: // unsolicited or not, a pong only proves the client alive
	case wsframe.OpClose:
		ce = wsframe.CheckClose(f.Payload)
	default:
		m, ok, err := w.assemble(f)
		switch {
		case errors.As(err, &ce):
		case ok && m.Op == wsframe.OpText: // Faye sends text; binary messages are ignored
			w.message(m.Data)
		}
	}
	if ce == nil {
		return 0, ""
	}
	return ce.Code, ce.Reason
}

// assemble adds a data frame to the message it belongs to. A message in one frame, the common
// case, needs no state kept between frames.
func (w *wsConn) assemble(f wsframe.Frame) (m wsframe.Message, ok bool, err error) {
	var asm *wsframe.Assembler
	if w.rd != nil {
		asm = w.rd.asm
	}
	if asm == nil && f.Fin {
		a := wsframe.Assembler{Max: w.h.cfg.MaxFrameBytes}
		return a.Add(f)
	}
	if asm == nil {
		asm = &wsframe.Assembler{Max: w.h.cfg.MaxFrameBytes}
		w.incomplete().asm = asm
	}
	if m, ok, err = asm.Add(f); ok || err != nil {
		w.rd.asm = nil
		w.tidy()
	}
	return m, ok, err
}

// message queues a complete text message for processing, in order.
func (w *wsConn) message(msg []byte) {
	w.imu.Lock()
	defer w.imu.Unlock()
	w.inbox = append(w.inbox, msg)
	if len(w.inbox) >= maxInbox {
		w.paused = true
	}
	if !w.busy {
		w.busy = true
		go w.process()
	}
}

// process handles queued messages one by one, then ends: a socket keeps no goroutine idle.
// What a client sent before it closed is processed all the same (a disconnect, a publish),
// as it would be by a reading goroutine; only the server's stop cancels it.
func (w *wsConn) process() {
	growStack()
	ctx := w.h.ctx
	for {
		w.imu.Lock()
		if len(w.inbox) == 0 {
			w.busy, w.inbox = false, nil
			resume := w.paused
			w.paused = false
			w.imu.Unlock()
			w.uncork()
			if resume {
				w.c.Resume()
			}
			return
		}
		msg := w.inbox[0]
		w.inbox[0], w.inbox = nil, w.inbox[1:]
		more := len(w.inbox) > 0
		w.imu.Unlock()
		w.handle(ctx, msg, more)
	}
}

// growStack grows a new goroutine's stack in one step to the size that processing a batch
// needs. A goroutine starts with a small stack, and a publish (decoding, the engine, the
// broker) outgrew it two or three times, each time copying the stack: 5 % of the server's
// CPU under a chat load. One frame of stackReserve bytes makes the runtime take a stack big
// enough at once, while the goroutine's stack is still almost empty and cheap to copy.
//
//go:noinline
func growStack() {
	var reserve [stackReserve]byte
	use(reserve[:])
}

// stackReserve is the stack, in bytes, that processing a batch needs (the runtime rounds it
// up to a power of two).
const stackReserve = 6 << 10

//go:noinline
func use([]byte) {}

// uncork writes what the processed batches held back, and the deliveries queued meanwhile.
func (w *wsConn) uncork() {
	w.mu.Lock()
	defer w.unlock()
	if !w.corked {
		return
	}
	w.corked = false
	sc := scratchPool.Get().(*scratch)
	w.flushLocked(sc)
	sc.release()
}

// handle processes one batch and sends its replies (unless the socket closed meanwhile). With
// more messages waiting, the replies are held back (corked) and leave with the next batch's in
// one write: a client that pipelines its publishes costs a write per read rather than per
// message.
func (w *wsConn) handle(ctx context.Context, data []byte, more bool) {
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	msgs, err := bayeux.DecodeOwnedBatch(sc.in, data, w.h.ecfg.MaxBatch) // data is the assembler's own copy
	if errors.Is(err, bayeux.ErrTooMany) {
		w.closeWith(wsframe.ClosePolicyViolation, "too many messages in one batch")
		return
	}
	if err != nil {
		return // Faye ignores frames that are not a JSON batch
	}
	sc.in = msgs
	w.mu.Lock()
	w.processing = true
	w.inProcess.Store(true)
	w.mu.Unlock()
	replies, connect := w.h.e.Process(ctx, sc.replies, msgs, bayeux.WebSocket, w.peer)
	sc.replies = replies
	if connect != nil {
		w.bind(connect)
	}
	w.mu.Lock()
	// The replies, and what the batch delivered to this very client (its own publish, in a
	// conversation), leave in one write.
	sc.buf = sc.buf[:0]
	if len(replies) > 0 || connect == nil {
		sc.enc = bayeux.AppendBatch(sc.enc[:0], replies, nil)
		sc.buf = wsframe.AppendFrame(sc.buf, wsframe.OpText, sc.enc)
	}
	w.inProcess.Store(false) // before taking: a delivery queued later is signalled again
	w.appendQueuedLocked(sc)
	w.corked = more && len(w.out)+len(sc.buf) <= maxCork
	w.sendLocked(sc.buf)
	if !w.corked {
		w.writeOutLocked()
	}
	w.processing = false
	if w.endAfter { // the batch ended the session (a disconnect): its replies went first
		w.closeLocked(wsframe.CloseNormal, "")
	}
	w.unlock()
}

// bind attaches the connect's session to this socket (pushing its deliveries from now on) and
// holds the connect reply for its wait.
func (w *wsConn) bind(c *faye.Connect) {
	w.mu.Lock()
	rebind := !w.closed && (w.cons == nil || !w.cons.Serves(c))
	var old *faye.Consumer
	if rebind {
		old, w.bound, w.cons = w.bound, nil, nil
	}
	w.unlock()
	if rebind {
		// Outside mu: attaching ends the previous consumer, which may be another socket.
		w.h.e.Release(old)
		cons := w.h.e.Stream(c, w)
		w.mu.Lock()
		if w.closed || cons == nil {
			w.bound, w.releaseDue = cons, true
			w.unlock()
			return
		}
		w.cons, w.bound = cons, cons
		w.pingAt = time.Now().Add(w.h.ecfg.Ping).UnixNano()
		w.unlock()
		w.c.Wake() // what was queued before the bind
	}
	w.mu.Lock()
	defer w.unlock()
	if w.closed {
		return
	}
	if w.held != nil { // a new connect replaces the held one, which is answered now
		w.sendFrameLocked(wsframe.OpText, w.held)
		w.held = nil
	}
	if c.Wait <= 0 {
		w.sendFrameLocked(wsframe.OpText, bayeux.EncodeBatch([]bayeux.Reply{c.Reply}, nil))
		return
	}
	w.held, w.deadline = bayeux.EncodeBatch([]bayeux.Reply{c.Reply}, nil), time.Now().Add(c.Wait).UnixNano()
}

// Queued is the session telling that deliveries wait: the loop's writer takes them, or the
// batch this client's goroutine is processing takes them with its replies (so a delivery waits at most for that batch: one write instead of two
// when a client publishes to a channel it is subscribed to).
func (w *wsConn) Queued() {
	if !w.inProcess.Load() {
		w.c.Wake()
	}
}

// Ended is the session letting go of this socket: replaced by another consumer, or ended
// (disconnected, expired, cut for overflow, or the server stops) — then the socket is closed
// too, as Faye does, with a normal closure.
func (w *wsConn) Ended(c *faye.Consumer, closed bool) {
	w.mu.Lock()
	defer w.unlock()
	if w.cons != c {
		return
	}
	w.cons = nil
	if !closed {
		return
	}
	if w.processing {
		w.endAfter = true
		return
	}
	w.closeLocked(wsframe.CloseNormal, "")
}

// flush writes what waits: first the rest of a frame the socket did not take, then the
// session's queued deliveries as one frame.
func (w *wsConn) flush(sc *scratch) {
	w.mu.Lock()
	defer w.unlock()
	w.flushLocked(sc)
}

func (w *wsConn) flushLocked(sc *scratch) {
	if w.closed || !w.writeOutLocked() {
		return
	}
	sc.buf = sc.buf[:0]
	w.appendQueuedLocked(sc)
	w.sendLocked(sc.buf)
}

// appendQueuedLocked appends a frame of the session's queued deliveries to sc.buf, if any.
func (w *wsConn) appendQueuedLocked(sc *scratch) {
	if w.cons == nil {
		return
	}
	sc.msgs = w.cons.Take(sc.msgs[:0])
	if len(sc.msgs) > 0 {
		sc.buf = appendDeliveries(sc.buf, sc.msgs)
		clear(sc.msgs)
	}
}

// release gives a pooled scratch back, unless a burst made it big; what it held is dropped
// (the messages point into their body, the replies into the messages).
func (sc *scratch) release() {
	clear(sc.in)
	clear(sc.replies)
	if cap(sc.buf) <= 64<<10 && cap(sc.enc) <= 64<<10 && cap(sc.msgs) <= 1024 && cap(sc.in) <= 64 && cap(sc.replies) <= 64 {
		sc.in, sc.replies, sc.buf = sc.in[:0], sc.replies[:0], sc.buf[:0]
		scratchPool.Put(sc)
	}
}

// appendDeliveries appends a text frame of encoded deliveries: [m1,m2,...].
func appendDeliveries(dst []byte, msgs [][]byte) []byte {
	n := 1 + len(msgs)
	for _, m := range msgs {
		n += len(m)
	}
	dst = append(wsframe.AppendHeader(dst, wsframe.OpText, n), '[')
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, m...)
	}
	return append(dst, ']')
}

// writeOutLocked writes what is left of earlier frames; true when nothing is left. Corked, it
// writes nothing: the bytes wait for the batches being processed, and so do the deliveries
// queued behind them.
func (w *wsConn) writeOutLocked() bool {
	if len(w.out) == 0 {
		return true
	}
	if w.corked {
		return false
	}
	n, err := w.c.Write(w.out)
	if err != nil && !errors.Is(err, sockloop.ErrWouldBlock) {
		w.closeLocked(0, "")
		return false
	}
	if n == len(w.out) {
		w.out = putFrameBuf(w.out)
		return true
	}
	w.out = w.out[n:]
	return false
}

// sendFrameLocked sends one frame of op.
func (w *wsConn) sendFrameLocked(op byte, payload []byte) {
	buf := framePool.Get().(*[]byte)
	frame := wsframe.AppendFrame((*buf)[:0], op, payload)
	w.sendLocked(frame)
	putFrameBuf(frame)
}

// sendLocked writes a frame now if nothing waits before it and the socket is not corked, and
// keeps what it does not write (copied: frame may be reused) for later.
func (w *wsConn) sendLocked(frame []byte) {
	if w.closed || len(frame) == 0 {
		return
	}
	if len(w.out) == 0 {
		n := 0
		if !w.corked {
			var err error
			n, err = w.c.Write(frame)
			if err != nil && !errors.Is(err, sockloop.ErrWouldBlock) {
				w.closeLocked(0, "")
				return
			}
		}
		if frame = frame[n:]; len(frame) == 0 {
			return
		}
		w.stalledAt = time.Now().UnixNano()
	}
	if len(w.out)+len(frame) > w.maxOut() {
		w.closeLocked(0, "") // a client that does not read
		return
	}
	if w.out == nil {
		w.out = (*framePool.Get().(*[]byte))[:0]
	}
	w.out = append(w.out, frame...)
}

// putFrameBuf gives out's buffer back to the pool once all of it is written (replies held
// back while a client's batches are processed pass through out every time), and returns nil.
func putFrameBuf(out []byte) []byte {
	if cap(out) <= 64<<10 {
		out = out[:0]
		framePool.Put(&out)
	}
	return nil
}

// Tick runs the socket's timers; the loop calls it every few hundred milliseconds at most.
func (w *wsConn) Tick(now int64) {
	w.mu.Lock()
	defer w.unlock()
	switch {
	case w.closed:
		if now > w.deadline {
			w.c.Close()
		}
	case now-w.lastRead.Load() > w.idle(): // half-open, or a client gone silent
		w.closeLocked(0, "")
	case len(w.out) > 0 && !w.corked && now-w.stalledAt > int64(writeTimeout): // a client that stopped reading
		w.closeLocked(0, "")
	default:
		if w.held != nil && now >= w.deadline {
			w.sendFrameLocked(wsframe.OpText, w.held)
			w.held = nil
		}
		if w.cons != nil && now >= w.pingAt {
			w.sendFrameLocked(wsframe.OpPing, nil)
			w.pingAt = now + int64(w.h.ecfg.Ping)
		}
		w.writeOutLocked() // in case a writable edge was missed
	}
}

// abort ends the socket at once: after a close frame when code is not 0, without waiting for
// the client's answer. For a broken stream and a stopping server.
func (w *wsConn) abort(code int, reason string) {
	w.mu.Lock()
	w.closeLocked(code, reason)
	w.c.Close()
	w.unlock()
}

func (w *wsConn) closeWith(code int, reason string) {
	w.mu.Lock()
	w.closeLocked(code, reason)
	w.unlock()
}

// closeLocked ends the socket: with a code, a close frame is sent and the socket drained until
// the client closes too (or closeLinger); without, it is closed at once. The held reply is
// dropped and the session released (by unlock), which takes a manager off duty at once.
func (w *wsConn) closeLocked(code int, reason string) {
	if w.closed {
		return
	}
	w.closed = true
	w.held, w.cons = nil, nil
	w.releaseDue = w.bound != nil
	if code == 0 {
		w.out = nil
		w.c.Close()
		return
	}
	frame := wsframe.AppendFrame(w.out, wsframe.OpClose, wsframe.ClosePayload(code, reason))
	w.out = nil
	if n, _ := w.c.Write(frame); n < len(frame) {
		w.c.Close() // no room even for the close frame: nothing to wait for
		return
	}
	w.c.CloseWrite()
	w.deadline = time.Now().Add(closeLinger).UnixNano()
}
