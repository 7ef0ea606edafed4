//go:build linux

package sockloop

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// On Linux, one epoll loop and one writer per shard (a shard per core, at most 4) serve the
// connections: the loop reads readable sockets and tells Writable when sockets become
// writable; the writer makes the Writable calls Wake asked for. One goroutine runs the timers.
//
// The loop never blocks in epoll_wait: its epoll descriptor is itself registered with the Go
// runtime's poller, and the loop parks like any goroutine until it is readable. A thread
// blocked in epoll_wait would hold one of the few Ps (two on a 2-core machine) until sysmon
// took it back, which takes up to 10 ms when the process was idle: every other goroutine,
// publishers and writers included, would wait that long.
type loopSys struct {
	shards []*shard
}

type shard struct {
	l    *Loop
	epfd int
	ep   *os.File // epfd, for the runtime's poller

	mu    sync.Mutex
	conns map[int32]*Conn // by descriptor
	all   []*Conn         // the sweep's snapshot, reused

	readyMu sync.Mutex
	ready   []*Conn // connections Wake asked a Writable call for
	wake    chan struct{}
}

// sys is what the loop knows of a socket: its descriptor, used with raw non-blocking reads
// and writes, and its shard. The descriptor is the loop's own duplicate: the one the net
// package opened is closed at once, which takes the socket out of the Go runtime's poller. Left
// there, every socket would keep a runtime poll descriptor (some 250 bytes outside the heap)
// and wake the runtime's poller on every event the loop already serves.
type sys struct {
	fd int
	sh *shard
}

// Buffers are taken for one read and given back at once: idle sockets own none.
var readPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// New starts a loop.
func New(cfg Config) (*Loop, error) {
	l := &Loop{cfg: cfg, done: make(chan struct{})}
	n := min(runtime.GOMAXPROCS(0), 4)
	for range n {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			for _, sh := range l.shards {
				_ = sh.ep.Close()
			}
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		_ = unix.SetNonblock(epfd, true) // so that os.NewFile hands it to the runtime's poller
		l.shards = append(l.shards, &shard{l: l, epfd: epfd, ep: os.NewFile(uintptr(epfd), "epoll"),
			conns: map[int32]*Conn{}, wake: make(chan struct{}, 1)})
	}
	for _, sh := range l.shards {
		l.wg.Add(2)
		go sh.poll()
		go sh.write()
	}
	l.wg.Add(1)
	go l.sweep()
	return l, nil
}

// Add serves a connection (upgraded, hijacked off its HTTP server) with the handler that
// handler returns for it; handler runs before the loop reads the connection. On an error the
// connection is not served and the caller still owns it.
func (l *Loop) Add(nc net.Conn, handler func(*Conn) Handler) error {
	inner, sc := unwrap(nc)
	if sc == nil {
		return fmt.Errorf("connection %T has no descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("descriptor of %T: %w", nc, err)
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(d uintptr) { fd, derr = unix.FcntlInt(d, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || derr != nil {
		return fmt.Errorf("descriptor of %T: %v", nc, errors.Join(err, derr))
	}
	// The socket lives on in the duplicate (non-blocking too: the flag belongs to the socket,
	// not to a descriptor). A wrapper's Close still runs at the end (a per-address slot is
	// given back then); without one, nothing of the net package's connection is kept (its
	// descriptor and addresses are some 300 bytes a socket).
	if c, ok := sc.(io.Closer); ok {
		_ = c.Close()
	}
	if any(inner) == any(sc) {
		inner = nil
	}
	sh := l.shards[fd%len(l.shards)]
	c := &Conn{nc: inner, sys: sys{fd: fd, sh: sh}}
	c.h = handler(c)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if l.closed.Load() {
		_ = unix.Close(fd)
		return errors.New("the server is stopping")
	}
	sh.conns[int32(fd)] = c
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(sh.conns, int32(fd))
		_ = unix.Close(fd)
		return fmt.Errorf("epoll_ctl add %d: %w", fd, err)
	}
	return nil
}

// unwrap finds the TCP connection under the wrappers: fasthttp's hijacked connection (its
// UnsafeConn) and the server's per-address counter (NetConn, as crypto/tls names it). The
// descriptor comes from the innermost, Close goes to the outermost wrapper that still matters
// (the per-address one gives back its slot). The hijack wrapper is skipped: it holds fasthttp's
// read buffer, which an idle socket must not keep.
func unwrap(nc net.Conn) (net.Conn, syscall.Conn) {
	if u, ok := nc.(interface{ UnsafeConn() net.Conn }); ok {
		nc = u.UnsafeConn()
	}
	outer := nc
	for range 4 {
		if sc, ok := nc.(syscall.Conn); ok {
			return outer, sc
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		if nc = u.NetConn(); nc == nil {
			break
		}
	}
	return outer, nil
}

// Close stops every connection (Handler.Stop) and the loops.
func (l *Loop) Close() {
	if l.closed.Swap(true) {
		return
	}
	for _, sh := range l.shards {
		sh.mu.Lock()
		all := make([]*Conn, 0, len(sh.conns))
		for _, c := range sh.conns {
			all = append(all, c)
		}
		sh.mu.Unlock()
		for _, c := range all {
			c.h.Stop()
		}
	}
	close(l.done)
	for _, sh := range l.shards {
		_ = sh.ep.Close() // wakes its loop
	}
	l.wg.Wait()
}

func (sh *shard) poll() {
	defer sh.l.wg.Done()
	raw, err := sh.ep.SyscallConn()
	if err != nil {
		sh.l.cfg.Log.Error("faye: epoll descriptor", "err", err.Error())
		return
	}
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	wait := func(fd uintptr) bool { // false: nothing yet, park until the descriptor is readable
		n, werr = unix.EpollWait(int(fd), events, 0)
		return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
	}
	var again, turn []*Conn // sockets whose read budget ran out
	for {
		if len(again) == 0 {
			if err := raw.Read(wait); err != nil {
				return // closed
			}
		} else if n, werr = unix.EpollWait(sh.epfd, events, 0); errors.Is(werr, unix.EINTR) {
			n, werr = 0, nil
		}
		if werr != nil {
			if !sh.l.closed.Load() {
				sh.l.cfg.Log.Error("faye: epoll_wait", "err", werr.Error())
			}
			return
		}
		turn, again = again, turn[:0]
		for i, c := range turn {
			if c.readable(true) {
				again = append(again, c)
			}
			turn[i] = nil
		}
		for _, ev := range events[:n] {
			sh.mu.Lock()
			c := sh.conns[ev.Fd]
			sh.mu.Unlock()
			if c == nil {
				continue
			}
			hup := ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
			if (hup || ev.Events&unix.EPOLLIN != 0) && c.readable(hup) {
				again = append(again, c)
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				c.h.Writable()
			}
		}
	}
}

// tick runs every connection's timers.
func (l *Loop) tick(now int64) {
	for _, sh := range l.shards {
		sh.tick(now)
	}
}

func (sh *shard) tick(now int64) {
	sh.mu.Lock()
	sh.all = sh.all[:0]
	for _, c := range sh.conns {
		sh.all = append(sh.all, c)
	}
	sh.mu.Unlock()
	for i, c := range sh.all {
		c.h.Tick(now)
		sh.all[i] = nil
	}
}

// write makes the Writable calls Wake asked for, in batches: while it runs, new deliveries
// pile up and go out together in the next call.
func (sh *shard) write() {
	defer sh.l.wg.Done()
	var list []*Conn
	for {
		select {
		case <-sh.wake:
		case <-sh.l.done:
			return
		}
		sh.readyMu.Lock()
		list, sh.ready = sh.ready, list[:0]
		sh.readyMu.Unlock()
		for i, c := range list {
			c.scheduled.Store(false)
			c.h.Writable()
			list[i] = nil
		}
	}
}

// Wake asks for a Writable call on the loop's writer, once until it is made.
func (c *Conn) Wake() {
	if c.scheduled.Swap(true) {
		return
	}
	sh := c.sh
	sh.readyMu.Lock()
	sh.ready = append(sh.ready, c)
	sh.readyMu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// readBudget bounds the reads of one turn on a socket, so that a client that floods (binary
// frames, which are dropped, or pings) cannot hold its loop: it gets another turn after the
// loop served the others.
const readBudget = 16

// readable reads what the socket has, until it would block; more reports that the budget ran
// out first (with edge-triggered epoll, nobody would tell again).
//
// A read that returns less than the buffer emptied the socket's queue: bytes arriving later
// raise a new edge, so reading again would only meet EAGAIN, a system call per turn for
// nothing (a read in three under a chat load). Only when the event came with the peer's
// hangup (drain) is the socket read to its end: that edge has been consumed, and the end of
// the stream would not be told again.
func (c *Conn) readable(drain bool) (more bool) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	buf := readPool.Get().(*[]byte)
	defer readPool.Put(buf)
	for range readBudget {
		if c.paused {
			return false
		}
		n, err := c.read(*buf)
		switch {
		case n > 0:
			switch c.h.Data((*buf)[:n]) {
			case Pause:
				c.paused = true
			case Stop:
				return false
			}
			if n < len(*buf) && !drain {
				return false
			}
		case errors.Is(err, ErrWouldBlock):
			return false
		default: // the end of the stream, or the socket is closed
			c.h.Hangup()
			return false
		}
	}
	return true
}

// Resume reads again after a Pause, on the caller's goroutine (the loop will not tell again
// about bytes already there). Never call it from Data.
func (c *Conn) Resume() {
	c.rmu.Lock()
	c.paused = false
	c.rmu.Unlock()
	for c.readable(true) {
	}
}

func (c *Conn) read(p []byte) (int, error) {
	if c.disposed.Load() {
		return 0, io.EOF
	}
	for {
		n, err := unix.Read(c.fd, p)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, ErrWouldBlock
		}
		return 0, err
	}
}

// Write writes what the socket takes now, without blocking: n < len(p) with ErrWouldBlock
// when it takes no more (the rest waits for Writable); another error means the connection is
// broken.
func (c *Conn) Write(p []byte) (int, error) {
	if c.disposed.Load() {
		return 0, net.ErrClosed
	}
	written := 0
	for written < len(p) {
		n, err := unix.Write(c.fd, p[written:])
		switch {
		case err == nil:
			written += n
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return written, ErrWouldBlock
		}
		return written, err
	}
	return written, nil
}

// CloseWrite sends FIN; reading goes on until the peer closes too.
func (c *Conn) CloseWrite() { _ = unix.Shutdown(c.fd, unix.SHUT_WR) }

// Close unregisters the connection and closes it. It never blocks and may be called under the
// user's locks, also from Data: the descriptor is closed under rmu (see Conn) on another
// goroutine.
func (c *Conn) Close() {
	if c.disposed.Swap(true) {
		return
	}
	sh := c.sh
	sh.mu.Lock()
	if sh.conns[int32(c.fd)] == c {
		delete(sh.conns, int32(c.fd))
		_ = unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	sh.mu.Unlock()
	go func() {
		c.rmu.Lock()
		defer c.rmu.Unlock()
		_ = unix.Close(c.fd)
		if c.nc != nil {
			_ = c.nc.Close()
		}
	}()
}
