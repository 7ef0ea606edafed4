//go:build linux

package faye

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/convead/chat-server/faye/wsframe"
)

// reactor serves websockets with one epoll loop and one writer per shard (a shard per core,
// at most 4): the loop reads readable sockets and finishes writes when sockets become
// writable; the writer writes the deliveries publishers queued. One goroutine runs the timers.
//
// The loop never blocks in epoll_wait: its epoll descriptor is itself registered with the Go
// runtime's poller, and the loop parks like any goroutine until it is readable. A thread
// blocked in epoll_wait would hold one of the few Ps (two on a 2-core machine) until sysmon
// took it back, which takes up to 10 ms when the process was idle: every other goroutine,
// publishers and writers included, would wait that long.
type reactor struct {
	h      *handler
	shards []*shard
	closed atomic.Bool
	done   chan struct{}
	ctx    context.Context // of message processing: ends when the server stops
	stop   context.CancelFunc
	wg     sync.WaitGroup
}

type shard struct {
	rx   *reactor
	epfd int
	ep   *os.File // epfd, for the runtime's poller

	mu    sync.Mutex
	conns map[int32]*wsConn // by descriptor
	all   []*wsConn         // the sweep's snapshot, reused

	readyMu sync.Mutex
	ready   []*wsConn // sockets with deliveries to write
	wake    chan struct{}
}

// sysConn is what the loop knows of a socket: its descriptor, used with raw non-blocking
// reads and writes. The descriptor is closed (by dispose) only under rmu and after closed is
// set under mu, so a read or write never meets a descriptor number reused by another socket.
type sysConn struct {
	fd int
	sh *shard
}

func newReactor(h *handler) (*reactor, error) {
	rx := &reactor{h: h, done: make(chan struct{})}
	rx.ctx, rx.stop = context.WithCancel(context.Background())
	n := min(runtime.GOMAXPROCS(0), 4)
	for range n {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			for _, sh := range rx.shards {
				_ = sh.ep.Close()
			}
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		_ = unix.SetNonblock(epfd, true) // so that os.NewFile hands it to the runtime's poller
		rx.shards = append(rx.shards, &shard{rx: rx, epfd: epfd, ep: os.NewFile(uintptr(epfd), "epoll"),
			conns: map[int32]*wsConn{}, wake: make(chan struct{}, 1)})
	}
	for _, sh := range rx.shards {
		rx.wg.Add(2)
		go sh.poll()
		go sh.write()
	}
	rx.wg.Add(1)
	go rx.sweep()
	return rx, nil
}

// add serves an upgraded connection.
func (rx *reactor) add(nc net.Conn, peer Peer) error {
	inner, sc := unwrap(nc)
	if sc == nil {
		return fmt.Errorf("connection %T has no descriptor", nc)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("descriptor of %T: %w", nc, err)
	}
	fd := -1
	if err := raw.Control(func(d uintptr) { fd = int(d) }); err != nil || fd < 0 {
		return fmt.Errorf("descriptor of %T: %v", nc, err)
	}
	w := newWSConn(rx.h, inner, peer)
	sh := rx.shards[fd%len(rx.shards)]
	w.fd, w.sh = fd, sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if rx.closed.Load() {
		return errors.New("the server is stopping")
	}
	sh.conns[int32(fd)] = w
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		delete(sh.conns, int32(fd))
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

// close ends every socket (their sessions ended first, with a normal closure) and the loops.
func (rx *reactor) close() {
	if rx.closed.Swap(true) {
		return
	}
	rx.stop()
	for _, sh := range rx.shards {
		sh.mu.Lock()
		all := make([]*wsConn, 0, len(sh.conns))
		for _, w := range sh.conns {
			all = append(all, w)
		}
		sh.mu.Unlock()
		for _, w := range all {
			w.abort(wsframe.CloseGoingAway, "the server stops")
		}
	}
	close(rx.done)
	for _, sh := range rx.shards {
		_ = sh.ep.Close() // wakes its loop
	}
	rx.wg.Wait()
}

func (sh *shard) poll() {
	defer sh.rx.wg.Done()
	raw, err := sh.ep.SyscallConn()
	if err != nil {
		sh.rx.h.log.Error("faye: epoll descriptor", "err", err.Error())
		return
	}
	events := make([]unix.EpollEvent, 256)
	var n int
	var werr error
	wait := func(fd uintptr) bool { // false: nothing yet, park until the descriptor is readable
		n, werr = unix.EpollWait(int(fd), events, 0)
		return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
	}
	var sc scratch
	var again, turn []*wsConn // sockets whose read budget ran out
	for {
		if len(again) == 0 {
			if err := raw.Read(wait); err != nil {
				return // closed
			}
		} else if n, werr = unix.EpollWait(sh.epfd, events, 0); errors.Is(werr, unix.EINTR) {
			n, werr = 0, nil
		}
		if werr != nil {
			if !sh.rx.closed.Load() {
				sh.rx.h.log.Error("faye: epoll_wait", "err", werr.Error())
			}
			return
		}
		turn, again = again, turn[:0]
		for i, w := range turn {
			if w.readable() {
				again = append(again, w)
			}
			turn[i] = nil
		}
		for _, ev := range events[:n] {
			sh.mu.Lock()
			w := sh.conns[ev.Fd]
			sh.mu.Unlock()
			if w == nil {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && w.readable() {
				again = append(again, w)
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				w.flush(&sc)
			}
		}
	}
}

// sweep runs the sockets' timers.
func (rx *reactor) sweep() {
	defer rx.wg.Done()
	rx.h.sweep(rx.done, func(now int64, sc *scratch) {
		for _, sh := range rx.shards {
			sh.sweep(now, sc)
		}
	})
}

func (sh *shard) sweep(now int64, sc *scratch) {
	sh.mu.Lock()
	sh.all = sh.all[:0]
	for _, w := range sh.conns {
		sh.all = append(sh.all, w)
	}
	sh.mu.Unlock()
	for i, w := range sh.all {
		w.tick(now, sc)
		sh.all[i] = nil
	}
}

// write writes the deliveries of the sockets publishers scheduled, in batches: while it
// writes, new deliveries pile up on the sessions and go out together in the next frame.
func (sh *shard) write() {
	defer sh.rx.wg.Done()
	var sc scratch
	var list []*wsConn
	for {
		select {
		case <-sh.wake:
		case <-sh.rx.done:
			return
		}
		sh.readyMu.Lock()
		list, sh.ready = sh.ready, list[:0]
		sh.readyMu.Unlock()
		for i, w := range list {
			w.scheduled.Store(false)
			w.flush(&sc)
			list[i] = nil
		}
	}
}

// schedule puts w on its writer's list, once until written.
func (w *wsConn) schedule() {
	if w.sh == nil || w.scheduled.Swap(true) {
		return
	}
	sh := w.sh
	sh.readyMu.Lock()
	sh.ready = append(sh.ready, w)
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
func (w *wsConn) readable() (more bool) {
	w.rmu.Lock()
	defer w.rmu.Unlock()
	buf := readPool.Get().(*[]byte)
	defer readPool.Put(buf)
	for range readBudget {
		if w.paused {
			return false
		}
		n, err := w.sysRead(*buf)
		switch {
		case n > 0:
			w.lastRead.Store(time.Now().UnixNano())
			if code, reason := w.feed((*buf)[:n]); code != 0 {
				w.closeWith(code, reason)
				return false
			}
		case errors.Is(err, errWouldBlock):
			return false
		default: // the end of the stream, or the socket is closed
			w.abort(0, "")
			return false
		}
	}
	return true
}

// resume reads again after a pause, on the processing goroutine.
func (w *wsConn) resume() {
	for w.readable() {
	}
}

func (w *wsConn) sysRead(p []byte) (int, error) {
	if w.disposed.Load() {
		return 0, io.EOF
	}
	for {
		n, err := unix.Read(w.fd, p)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errWouldBlock
		}
		return 0, err
	}
}

func (w *wsConn) sysWrite(p []byte) (int, error) {
	if w.disposed.Load() {
		return 0, net.ErrClosed
	}
	written := 0
	for written < len(p) {
		n, err := unix.Write(w.fd, p[written:])
		switch {
		case err == nil:
			written += n
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return written, errWouldBlock
		}
		return written, err
	}
	return written, nil
}

// shutdownWrite sends FIN after our close frame; reading goes on until the client closes.
func (w *wsConn) shutdownWrite() { _ = unix.Shutdown(w.fd, unix.SHUT_WR) }

// dispose unregisters the socket and closes it. Under mu; the descriptor is closed under rmu
// (see sysConn), on another goroutine since the caller may hold rmu already.
func (w *wsConn) dispose() {
	if w.disposed.Swap(true) {
		return
	}
	if sh := w.sh; sh != nil {
		sh.mu.Lock()
		if sh.conns[int32(w.fd)] == w {
			delete(sh.conns, int32(w.fd))
			_ = unix.EpollCtl(sh.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
		}
		sh.mu.Unlock()
	}
	go func() {
		w.rmu.Lock()
		defer w.rmu.Unlock()
		_ = w.nc.Close()
	}()
}
