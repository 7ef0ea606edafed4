// Package accept keeps a listener accepting through temporary failures. Accept errors such as
// EMFILE (out of file descriptors) pass: connections close and descriptors come back. The
// servers we wrap (fasthttp, our MQTT loop) stop for good on the first error, so this retries
// temporary ones with back-off, as net/http does, and records the error of a listener that
// really dies, for readiness checks and the process's exit status.
package accept

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Back-off between retries, as net/http's Server.Serve: 5 ms doubling up to 1 s.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// logEvery rate-limits the log of retried errors: under descriptor exhaustion they repeat
// every second or faster, and the log must stay readable (and must not itself fill a disk).
const logEvery = 10 * time.Second

// Listener is a net.Listener whose Accept retries temporary errors.
type Listener struct {
	net.Listener
	name  string
	log   *slog.Logger
	sleep func(time.Duration)

	closing atomic.Bool
	// lastLog (unix nanoseconds) and retried (since it) rate-limit the log.
	lastLog atomic.Int64
	retried atomic.Int64

	dead    chan struct{}
	once    sync.Once
	deadErr error // set before dead is closed
}

// New wraps ln; name ("http", "mqtt") names it in logs and errors.
func New(ln net.Listener, name string, log *slog.Logger) *Listener {
	return &Listener{Listener: ln, name: name, log: log, sleep: time.Sleep, dead: make(chan struct{})}
}

// Accept returns the next connection. Temporary errors are retried; any other error is
// returned, and when it is not the result of Close the listener is dead (see Err).
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		if l.closing.Load() {
			return nil, err
		}
		if !Temporary(err) {
			err = fmt.Errorf("%s listener: accept: %w", l.name, err)
			l.once.Do(func() {
				l.deadErr = err
				close(l.dead)
			})
			l.log.Error("listener stopped accepting connections", "listener", l.name, "err", err.Error())
			return nil, err
		}
		if delay == 0 {
			delay = minDelay
		} else {
			delay = min(2*delay, maxDelay)
		}
		l.logRetry(err, delay)
		l.sleep(delay)
	}
}

func (l *Listener) logRetry(err error, delay time.Duration) {
	n := l.retried.Add(1)
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(logEvery) || !l.lastLog.CompareAndSwap(last, now) {
		return
	}
	l.retried.Add(-n)
	l.log.Warn("accept failed: retrying (is the file descriptor limit too low?)",
		"listener", l.name, "err", err.Error(), "retry_in", delay.String(), "errors", n)
}

// Close stops the listener; the Accept error that follows is not a death.
func (l *Listener) Close() error {
	l.closing.Store(true)
	return l.Listener.Close()
}

// Dead is closed when the listener has stopped accepting for a reason other than Close.
func (l *Listener) Dead() <-chan struct{} { return l.dead }

// Err is the error that stopped the listener; nil while it accepts, or after Close.
func (l *Listener) Err() error {
	select {
	case <-l.dead:
		return l.deadErr
	default:
		return nil
	}
}

// Temporary reports whether an accept error may pass: out of descriptors or memory, a
// connection aborted before it was accepted, or a net.Error that says so.
func Temporary(err error) bool {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED:
			return true
		}
	}
	var ne interface {
		Timeout() bool
		Temporary() bool
	}
	return errors.As(err, &ne) && (ne.Timeout() || ne.Temporary())
}
