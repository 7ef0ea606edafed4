package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/auth"
)

// Channels of the Faye scenarios. On this server every bench client is a service of the
// organisation, which the ACL lets subscribe and publish anywhere in it; on the reference
// server any channel is open.
const (
	chIdle   = "/bench/all"
	chFanout = "/bench/fanout"
)

// fayeDialer returns the dialer of the bench identity (a service of -org when -secret is
// set) and the poller that reads its clients, to be closed after them.
func (o *options) fayeDialer(errs *atomic.Int64) (*fayeDialer, error) {
	p, err := newPoller()
	if err != nil {
		return nil, err
	}
	d := &fayeDialer{url: "ws://" + o.http + o.mount, poll: p, errs: errs}
	if o.secret != "" {
		tok, err := o.token(auth.Service, "bench")
		if err != nil {
			p.close()
			return nil, err
		}
		d.ext, _ = json.Marshal(map[string]string{"token": tok})
	}
	return d, nil
}

func (o *options) token(role auth.Role, sub string) (string, error) {
	tok, err := auth.Issue([]byte(o.secret), auth.Identity{Subject: sub, Role: role, Org: o.org}, 24*time.Hour, time.Now())
	if err != nil {
		return "", fmt.Errorf("sign a %s token: %w", role, err)
	}
	return tok, nil
}

func closeAll(cs []*fayeClient) {
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}

// drain waits until got reaches want, or nothing has arrived for a second (the rest is lost).
func drain(ctx context.Context, got *atomic.Int64, want int64) {
	last, still := got.Load(), 0
	for got.Load() < want && ctx.Err() == nil && still < 10 {
		time.Sleep(100 * time.Millisecond)
		if n := got.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
}

func fayeIdle(ctx context.Context, o *options) (*Result, error) {
	if o.pid <= 0 {
		return nil, fmt.Errorf("idle needs -pid to read the server's memory")
	}
	var errs, received atomic.Int64
	d, err := o.fayeDialer(&errs)
	if err != nil {
		return nil, err
	}
	defer d.poll.close()
	pub, err := d.dial(ctx, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pub.close()
	time.Sleep(o.settle)
	before, err := rssBytes(o.pid)
	if err != nil {
		return nil, err
	}
	onDeliver := func(int64) { received.Add(1) }
	clients, err := dialAll(ctx, o.clients, o.conc, func(ctx context.Context, _ int) (*fayeClient, error) {
		return d.dial(ctx, []string{chIdle}, onDeliver)
	})
	defer closeAll(clients)
	if err != nil {
		return nil, err
	}
	time.Sleep(o.settle)
	after, err := rssBytes(o.pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(o.hold)
	// Held, and all receiving: one message to every client.
	if err := pub.publish([]byte(chIdle), o.payload(0)); err != nil {
		return nil, err
	}
	drain(ctx, &received, int64(o.clients))
	r := &Result{RSSBefore: before, RSSAfter: after, BytesPerClient: float64(after-before) / float64(o.clients), Received: received.Load(), Errors: errs.Load()}
	return r, nil
}

func fayeFanout(ctx context.Context, o *options) (*Result, error) {
	var errs, delivered atomic.Int64
	h := new(histogram)
	d, err := o.fayeDialer(&errs)
	if err != nil {
		return nil, err
	}
	defer d.poll.close()
	onDeliver := func(ts int64) { o.latency(h, ts); delivered.Add(1) }
	subs, err := dialAll(ctx, o.clients, o.conc, func(ctx context.Context, _ int) (*fayeClient, error) {
		return d.dial(ctx, []string{chFanout}, onDeliver)
	})
	defer closeAll(subs)
	if err != nil {
		return nil, err
	}
	pub, err := d.dial(ctx, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pub.close()
	return o.fanOut(ctx, h, &delivered, &errs, func(seq int64) error {
		return pub.publish([]byte(chFanout), o.payload(seq))
	})
}

// fanOut publishes with send for -duration, at -rate or flat out (at most a window of messages
// not yet delivered to every one of the -clients subscribers), waits for the deliveries and
// reports them with the server's CPU.
func (o *options) fanOut(ctx context.Context, h *histogram, delivered, errs *atomic.Int64, send func(seq int64) error) (*Result, error) {
	n := int64(o.clients)
	window := int64(o.windowOr(20))
	cpu0, begin := o.markCPU(), time.Now()
	sent, err := pace(ctx, o.rate, o.duration, func(seq int64) bool {
		return seq*n-delivered.Load() < window*n
	}, send)
	if err != nil {
		return nil, err
	}
	drain(ctx, delivered, sent*n)
	r := &Result{Sent: sent, Expected: sent * n, Delivered: delivered.Load(), Errors: errs.Load()}
	srv, gen := o.cpuSince(cpu0)
	r.finish(time.Since(begin), h, srv, gen)
	return r, nil
}

// pace calls send(0), send(1), ... for duration: at rate per second (open loop: a late
// sender catches up, it does not skip), or, with rate 0, whenever ready(seq) allows (flat out
// with a window). It returns how many were sent.
func pace(ctx context.Context, rate float64, duration time.Duration, ready func(seq int64) bool, send func(seq int64) error) (int64, error) {
	start := time.Now()
	end := start.Add(duration)
	var seq int64
	for time.Now().Before(end) && ctx.Err() == nil {
		if rate > 0 {
			due := start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
				continue
			}
		} else if !ready(seq) {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err := send(seq); err != nil {
			return seq, fmt.Errorf("publish %d: %w", seq, err)
		}
		seq++
	}
	return seq, ctx.Err()
}

// fayePairs runs P conversations: clients a and b of pair i each subscribe to their own inbox
// and publish to the other's, every publish one delivery. Flat out, each client keeps at most
// -window messages in flight; with -rate, publishes are spread over all clients.
func fayePairs(ctx context.Context, o *options) (*Result, error) {
	var errs, delivered, sentTotal atomic.Int64
	h := new(histogram)
	d, err := o.fayeDialer(&errs)
	if err != nil {
		return nil, err
	}
	defer d.poll.close()
	p := o.clients
	window := o.windowOr(4)
	inbox := func(i int) string { return fmt.Sprintf("/bench/pairs/%d/%c", i/2, 'a'+i%2) }
	// credits[i] are the messages client i may still have in flight; its peer returns one
	// for each delivery.
	credits := make([]chan struct{}, 2*p)
	for i := range credits {
		credits[i] = make(chan struct{}, window)
		for range window {
			credits[i] <- struct{}{}
		}
	}
	clients, err := dialAll(ctx, 2*p, o.conc, func(ctx context.Context, i int) (*fayeClient, error) {
		peer := i ^ 1
		return d.dial(ctx, []string{inbox(i)}, func(ts int64) {
			o.latency(h, ts)
			delivered.Add(1)
			select {
			case credits[peer] <- struct{}{}:
			default:
			}
		})
	})
	defer closeAll(clients)
	if err != nil {
		return nil, err
	}
	cpu0, begin := o.markCPU(), time.Now()
	end := begin.Add(o.duration)
	runCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var (
		firstErr error
		errOnce  sync.Once
	)
	if o.rate > 0 {
		n, err := pace(runCtx, o.rate, o.duration, nil, func(seq int64) error {
			i := int(seq % int64(2*p))
			return clients[i].publish([]byte(inbox(i^1)), o.payload(seq))
		})
		sentTotal.Store(n)
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
	} else {
		done := make(chan struct{})
		for i, c := range clients {
			go func() {
				defer func() { done <- struct{}{} }()
				target := []byte(inbox(i ^ 1))
				for seq := int64(0); ; seq++ {
					select {
					case <-runCtx.Done():
						return
					case <-credits[i]:
					}
					if err := c.publish(target, o.payload(seq)); err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					sentTotal.Add(1)
				}
			}()
		}
		for range clients {
			<-done
		}
	}
	if firstErr != nil {
		return nil, fmt.Errorf("publish: %w", firstErr)
	}
	sent := sentTotal.Load()
	drain(ctx, &delivered, sent)
	r := &Result{Sent: sent, Expected: sent, Delivered: delivered.Load(), Errors: errs.Load()}
	srv, gen := o.cpuSince(cpu0)
	r.finish(time.Since(begin), h, srv, gen)
	return r, nil
}

// freePort prints a free loopback TCP port, for starting reference servers.
func freePort(w interface{ Write([]byte) (int, error) }) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	_, err = fmt.Fprintln(w, strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:"))
	return err
}
