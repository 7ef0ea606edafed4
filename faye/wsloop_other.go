//go:build !linux

package faye

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/faye/wsframe"
)

// Elsewhere than Linux, a websocket is served by a goroutine that blocks in Read, and writes
// block (bounded by writeTimeout). It is the simple fallback; the Linux event loop is the one
// built for scale.
type reactor struct {
	h      *handler
	mu     sync.Mutex
	conns  map[*wsConn]struct{}
	closed atomic.Bool
	done   chan struct{}
	ctx    context.Context // of message processing: ends when the server stops
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

type sysConn struct {
	resumed *sync.Cond // on rmu: reading may go on
}

func newReactor(h *handler) (*reactor, error) {
	rx := &reactor{h: h, conns: map[*wsConn]struct{}{}, done: make(chan struct{})}
	rx.ctx, rx.stop = context.WithCancel(context.Background())
	rx.wg.Add(1)
	go rx.sweep()
	return rx, nil
}

func (rx *reactor) add(nc net.Conn, peer Peer) error {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	w := newWSConn(rx.h, nc, peer)
	w.resumed = sync.NewCond(&w.rmu)
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if rx.closed.Load() {
		return errors.New("the server is stopping")
	}
	rx.conns[w] = struct{}{}
	go rx.read(w)
	return nil
}

func (rx *reactor) read(w *wsConn) {
	buf := make([]byte, 16<<10)
	for {
		w.rmu.Lock()
		for w.paused {
			w.resumed.Wait()
		}
		w.rmu.Unlock()
		n, err := w.nc.Read(buf)
		if n > 0 {
			w.lastRead.Store(time.Now().UnixNano())
			w.rmu.Lock()
			code, reason := w.feed(buf[:n])
			w.rmu.Unlock()
			if code != 0 {
				w.closeWith(code, reason)
			}
		}
		if err != nil {
			w.abort(0, "")
			rx.mu.Lock()
			delete(rx.conns, w)
			rx.mu.Unlock()
			return
		}
	}
}

func (rx *reactor) sweep() {
	defer rx.wg.Done()
	rx.h.sweep(rx.done, func(now int64, sc *scratch) {
		for _, w := range rx.snapshot() {
			w.tick(now, sc)
		}
	})
}

func (rx *reactor) close() {
	if rx.closed.Swap(true) {
		return
	}
	rx.stop()
	for _, w := range rx.snapshot() {
		w.abort(wsframe.CloseGoingAway, "the server stops")
	}
	close(rx.done)
	rx.wg.Wait()
}

func (rx *reactor) snapshot() []*wsConn {
	rx.mu.Lock()
	defer rx.mu.Unlock()
	all := make([]*wsConn, 0, len(rx.conns))
	for w := range rx.conns {
		all = append(all, w)
	}
	return all
}

// resume lets the reading goroutine go on after a pause.
func (w *wsConn) resume() {
	w.rmu.Lock()
	w.resumed.Broadcast()
	w.rmu.Unlock()
}

func (w *wsConn) schedule() {
	if w.scheduled.Swap(true) {
		return
	}
	go func() {
		w.scheduled.Store(false)
		w.flush(&scratch{})
	}()
}

func (w *wsConn) sysWrite(p []byte) (int, error) {
	if w.disposed.Load() {
		return 0, net.ErrClosed
	}
	_ = w.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return w.nc.Write(p)
}

func (w *wsConn) shutdownWrite() {
	if c, ok := w.nc.(interface{ CloseWrite() error }); ok {
		_ = c.CloseWrite()
	}
}

func (w *wsConn) dispose() {
	if !w.disposed.Swap(true) {
		_ = w.nc.Close()
	}
}
