//go:build !linux

package sockloop

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Elsewhere than Linux, a connection is served by a goroutine that blocks in Read, and writes
// block (bounded by Config.WriteTimeout). It is the simple fallback; the Linux event loop is
// the one built for scale.
type loopSys struct {
	mu    sync.Mutex
	conns map[*Conn]struct{}
}

type sys struct {
	resumed *sync.Cond // on rmu: reading may go on
	l       *Loop
}

// New starts a loop.
func New(cfg Config) (*Loop, error) {
	l := &Loop{cfg: cfg, done: make(chan struct{}), loopSys: loopSys{conns: map[*Conn]struct{}{}}}
	l.wg.Add(1)
	go l.sweep()
	return l, nil
}

// Add serves a connection (upgraded, hijacked off its HTTP server) with the handler that
// handler returns for it; handler runs before the loop reads the connection. On an error the
// connection is not served and the caller still owns it.
func (l *Loop) Add(nc net.Conn, handler func(*Conn) Handler) error {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	c := &Conn{nc: nc, sys: sys{l: l}}
	c.resumed = sync.NewCond(&c.rmu)
	c.h = handler(c)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return errors.New("the server is stopping")
	}
	l.conns[c] = struct{}{}
	go l.read(c)
	return nil
}

func (l *Loop) read(c *Conn) {
	buf := make([]byte, 16<<10)
	for {
		c.rmu.Lock()
		for c.paused {
			c.resumed.Wait()
		}
		c.rmu.Unlock()
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.rmu.Lock()
			if c.h.Data(buf[:n]) == Pause {
				c.paused = true
			}
			c.rmu.Unlock()
		}
		if err != nil {
			c.h.Hangup()
			l.mu.Lock()
			delete(l.conns, c)
			l.mu.Unlock()
			return
		}
	}
}

func (l *Loop) tick(now int64) {
	for _, c := range l.snapshot() {
		c.h.Tick(now)
	}
}

// Close stops every connection (Handler.Stop) and the loop.
func (l *Loop) Close() {
	if l.closed.Swap(true) {
		return
	}
	for _, c := range l.snapshot() {
		c.h.Stop()
	}
	close(l.done)
	l.wg.Wait()
}

func (l *Loop) snapshot() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := make([]*Conn, 0, len(l.conns))
	for c := range l.conns {
		all = append(all, c)
	}
	return all
}

// Resume lets the reading goroutine go on after a Pause. Never call it from Data.
func (c *Conn) Resume() {
	c.rmu.Lock()
	c.paused = false
	c.resumed.Broadcast()
	c.rmu.Unlock()
}

// Wake asks for a Writable call, once until it is made.
func (c *Conn) Wake() {
	if c.scheduled.Swap(true) {
		return
	}
	go func() {
		c.scheduled.Store(false)
		c.h.Writable()
	}()
}

// Write writes p, blocking for Config.WriteTimeout at most.
func (c *Conn) Write(p []byte) (int, error) {
	if c.disposed.Load() {
		return 0, net.ErrClosed
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.l.cfg.WriteTimeout))
	return c.nc.Write(p)
}

// CloseWrite sends FIN; reading goes on until the peer closes too.
func (c *Conn) CloseWrite() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Close closes the connection. It never blocks and may be called under the user's locks.
func (c *Conn) Close() {
	if !c.disposed.Swap(true) {
		_ = c.nc.Close()
	}
}
