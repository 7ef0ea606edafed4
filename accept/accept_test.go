package accept

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// fakeListener returns its errors in turn, then a connection.
type fakeListener struct {
	net.Listener
	errs   []error
	closed bool
}

func (f *fakeListener) Accept() (net.Conn, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	c, _ := net.Pipe()
	return c, nil
}

func (f *fakeListener) Close() error { f.closed = true; return nil }

func opErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestAcceptRetries: temporary errors are retried with a doubling back-off capped at 1 s and
// the connection that follows is returned; a permanent error is returned and kills the
// listener.
func TestAcceptRetries(t *testing.T) {
	many := make([]error, 10)
	for i := range many {
		many[i] = opErr(syscall.EMFILE)
	}
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, n := range v {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	cases := []struct {
		name   string
		errs   []error
		delays []time.Duration
		dead   bool
	}{
		{"EMFILE three times", []error{opErr(syscall.EMFILE), opErr(syscall.EMFILE), opErr(syscall.EMFILE)},
			[]time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}, false},
		{"ENFILE", []error{opErr(syscall.ENFILE)}, []time.Duration{5 * time.Millisecond}, false},
		{"ENOBUFS", []error{opErr(syscall.ENOBUFS)}, []time.Duration{5 * time.Millisecond}, false},
		{"ENOMEM", []error{opErr(syscall.ENOMEM)}, []time.Duration{5 * time.Millisecond}, false},
		{"ECONNABORTED", []error{opErr(syscall.ECONNABORTED)}, []time.Duration{5 * time.Millisecond}, false},
		{"timeout", []error{timeoutErr{}}, []time.Duration{5 * time.Millisecond}, false},
		{"back-off capped at 1s", many, ms(5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000), false},
		{"closed from under it", []error{net.ErrClosed}, nil, true},
		{"other error", []error{opErr(syscall.EINVAL)}, nil, true},
		{"EMFILE, then a permanent error", []error{opErr(syscall.EMFILE), io.ErrUnexpectedEOF}, []time.Duration{5 * time.Millisecond}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln := New(&fakeListener{errs: tc.errs}, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
			var slept []time.Duration
			ln.sleep = func(d time.Duration) { slept = append(slept, d) }
			c, err := ln.Accept()
			if tc.dead {
				if err == nil || ln.Err() == nil || !errors.Is(ln.Err(), tc.errs[len(tc.errs)-1]) {
					t.Fatalf("Accept: %v, Err %v; want the permanent error", err, ln.Err())
				}
				select {
				case <-ln.Dead():
				default:
					t.Fatal("Dead not closed")
				}
			} else {
				if err != nil || c == nil {
					t.Fatalf("Accept: %v; want the connection after the retries", err)
				}
				c.Close()
				if ln.Err() != nil {
					t.Fatalf("Err %v after retried errors", ln.Err())
				}
			}
			if !reflect.DeepEqual(slept, tc.delays) {
				t.Fatalf("back-off %v, want %v", slept, tc.delays)
			}
		})
	}
}

// TestAcceptAfterClose: the error after Close is returned at once and is not a death.
func TestAcceptAfterClose(t *testing.T) {
	f := &fakeListener{errs: []error{net.ErrClosed}}
	ln := New(f, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := ln.Close(); err != nil || !f.closed {
		t.Fatalf("Close: %v, underlying closed %v", err, f.closed)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if ln.Err() != nil {
		t.Fatalf("Err after Close: %v, want nil", ln.Err())
	}
}

func TestTemporary(t *testing.T) {
	for err, want := range map[error]bool{
		opErr(syscall.EMFILE):                            true,
		fmt.Errorf("wrapped: %w", opErr(syscall.EMFILE)): true,
		opErr(syscall.ECONNABORTED):                      true,
		net.ErrClosed:                                    false,
		opErr(syscall.EBADF):                             false,
	} {
		if got := Temporary(err); got != want {
			t.Errorf("Temporary(%v) = %v, want %v", err, got, want)
		}
	}
}
