package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(60) // one a second, bursts of 60
	now := time.Unix(1000, 0)
	for i := 0; i < 60; i++ {
		if !l.Allow("a", now) {
			t.Fatalf("event %d of the burst refused", i)
		}
	}
	if l.Allow("a", now) {
		t.Fatal("61st event allowed")
	}
	if !l.Allow("b", now) {
		t.Fatal("another key is limited by the first")
	}
	if !l.Allow("a", now.Add(1100*time.Millisecond)) || l.Allow("a", now.Add(1100*time.Millisecond)) {
		t.Fatal("one token a second")
	}
	if !l.Allow("a", now.Add(time.Hour)) {
		t.Fatal("the bucket does not refill")
	}
	var off *Limiter = New(0)
	if off != nil || !off.Allow("x", now) {
		t.Fatal("a limit of 0 must be off")
	}
}

func TestLimiterMemoryBounded(t *testing.T) {
	l := New(10)
	now := time.Unix(1000, 0)
	for i := 0; i < 3*MaxKeys; i++ {
		l.Allow(fmt.Sprint("k", i), now)
	}
	if n := len(l.buckets); n > MaxKeys {
		t.Fatalf("%d buckets kept, at most %d", n, MaxKeys)
	}
}

func TestCounter(t *testing.T) {
	c := NewCounter(2)
	if !c.Acquire("ip") || c.Full("ip") || !c.Acquire("ip") || !c.Full("ip") || c.Acquire("ip") {
		t.Fatal("max 2")
	}
	if !c.Acquire("other") {
		t.Fatal("keys are independent")
	}
	c.Release("ip")
	if !c.Acquire("ip") {
		t.Fatal("release frees a slot")
	}
	c.Release("ip")
	c.Release("ip")
	c.Release("ip") // more releases than acquires are harmless
	if len(c.n) != 1 {
		t.Fatalf("empty keys kept: %v", c.n)
	}
	var off *Counter = NewCounter(0)
	if !off.Acquire("x") || off.Full("x") {
		t.Fatal("a limit of 0 must be off")
	}
	off.Release("x")
}
