package server

import (
	"bufio"
	"net"
	"net/http"
	"testing"
)

// TestLimitPerIP: a connection over the limit reads a 429 and is closed; a closed connection
// gives its slot back; NetConn names the TCP connection.
func TestLimitPerIP(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limitPerIP(raw, 2)
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	if _, ok := first.(interface{ NetConn() net.Conn }).NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn of %T is not the TCP connection", first)
	}
	over := dial()
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a 3rd connection from one address: %v, %v; want a 429", resp, err)
	}
	_ = first.Close()
	_ = first.Close() // twice: one slot back, not two
	dial()
	<-accepted
	over = dial()
	if resp, err := http.ReadResponse(bufio.NewReader(over), nil); err != nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after one close and one new connection: %v, %v; want a 429", resp, err)
	}
	_ = second.Close()
}

func TestLimitPerIPOff(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if ln := limitPerIP(raw, 0); ln != raw {
		t.Errorf("limit 0 wrapped the listener: %T", ln)
	}
}
