package main

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// poller reads the detached websockets of a scenario: one goroutine per core, each waiting
// on its own epoll set (edge-triggered) and reading every socket that has data until it is
// drained. Against a goroutine per connection this saves a read that ends in EAGAIN and a
// park and wake-up per delivery: the load generator's CPU per delivery was as large as the
// server's, on the same cores.
type poller struct {
	readers []*pollReader
	next    atomic.Uint32
	stop    int // an eventfd in every epoll set: written once, it ends every reader
	wg      sync.WaitGroup
}

type pollReader struct {
	ep    int
	mu    sync.Mutex
	conns map[int32]*fayeClient
}

func newPoller() (*poller, error) {
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	p := &poller{stop: stop}
	for range runtime.GOMAXPROCS(0) {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err == nil {
			err = unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stop)})
		}
		if err != nil {
			p.close()
			return nil, fmt.Errorf("epoll: %w", err)
		}
		r := &pollReader{ep: ep, conns: map[int32]*fayeClient{}}
		p.readers = append(p.readers, r)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			r.run(stop)
		}()
	}
	return p, nil
}

// add hands a set-up client to a reader; from then on its messages go to c.handle on that
// reader's goroutine, and c.done is closed when the connection ends.
func (p *poller) add(c *fayeClient) error {
	if err := c.ws.detach(); err != nil {
		return err
	}
	r := p.readers[p.next.Add(1)%uint32(len(p.readers))]
	// Bytes that arrived during setup are in c.ws.in already; any later arrival raises the
	// first edge once the socket is in the set. The reader takes c from the map under r.mu,
	// after this. A framing error found here stays in c.ws and ends the first receive.
	_ = c.ws.handleAll(c.handle)
	fd := int32(c.ws.fd)
	r.mu.Lock()
	r.conns[fd] = c
	r.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: fd}
	if err := unix.EpollCtl(r.ep, unix.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		r.mu.Lock()
		delete(r.conns, fd)
		r.mu.Unlock()
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

func (r *pollReader) run(stop int) {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(r.ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == stop {
				return
			}
			r.mu.Lock()
			c := r.conns[ev.Fd]
			r.mu.Unlock()
			if c == nil {
				continue
			}
			if err := c.ws.receive(c.handle); err != nil {
				_ = unix.EpollCtl(r.ep, unix.EPOLL_CTL_DEL, int(ev.Fd), nil)
				r.mu.Lock()
				delete(r.conns, ev.Fd)
				r.mu.Unlock()
				c.ended()
			}
		}
	}
}

// close ends the readers; every client must have been closed before.
func (p *poller) close() {
	_, _ = unix.Write(p.stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	p.wg.Wait()
	for _, r := range p.readers {
		unix.Close(r.ep)
	}
	unix.Close(p.stop)
}
