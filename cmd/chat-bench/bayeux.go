package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A Bayeux client over websocket that does what the official Faye client does on that
// transport: handshake, then /meta/connect, the subscribes, a new
// /meta/connect as soon as the previous one is answered (advice.interval is 0 on both
// servers), publishes with the session's clientId. Set up, a client is read by the
// scenario's poller (poller.go).

// fayeMsg is the part of a Bayeux message the client looks at.
type fayeMsg struct {
	Channel    string          `json:"channel"`
	ClientID   string          `json:"clientId"`
	Successful *bool           `json:"successful"`
	Error      string          `json:"error"`
	Data       json.RawMessage `json:"data"`
	Advice     *struct {
		Reconnect string `json:"reconnect"`
		Interval  int    `json:"interval"`
	} `json:"advice"`
}

// fayeDialer opens clients of one server with one identity.
type fayeDialer struct {
	url  string          // ws://host:port/faye
	poll *poller         // reads the clients once they are set up
	ext  json.RawMessage // the ext of every message ({"token":…}), or nil: a session answers only its own identity
	errs *atomic.Int64   // failures after setup: refused publishes, lost connections
	// pubOK counts acknowledged publishes.
	pubOK atomic.Int64
}

type fayeClient struct {
	d  *fayeDialer
	ws *wsConn
	id string
	// onDeliver is called, on the reading goroutine, with the send timestamp of each delivery.
	onDeliver func(ts int64)

	seq     atomic.Uint64
	closing atomic.Bool
	done    chan struct{}

	// Owned by the reading goroutine.
	subAcks int
	subErr  error
}

const setupTimeout = 30 * time.Second

// dial connects, handshakes and subscribes to channels, and starts the connect loop.
func (d *fayeDialer) dial(ctx context.Context, channels []string, onDeliver func(ts int64)) (*fayeClient, error) {
	ws, err := dialWS(ctx, d.url)
	if err != nil {
		return nil, err
	}
	c := &fayeClient{d: d, ws: ws, onDeliver: onDeliver, done: make(chan struct{})}
	if err := c.setup(channels); err != nil {
		ws.close()
		return nil, err
	}
	if err := d.poll.add(c); err != nil {
		ws.close()
		return nil, err
	}
	return c, nil
}

func (c *fayeClient) setup(channels []string) error {
	hs := []byte(`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket","long-polling"],"id":"0"`)
	hs = c.withExt(hs)
	if err := c.write(append(hs, "}]"...)); err != nil {
		return err
	}
	for c.id == "" {
		frame, err := c.read()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		var msgs []fayeMsg
		if err := json.Unmarshal(frame, &msgs); err != nil {
			return fmt.Errorf("handshake reply %q: %w", frame, err)
		}
		for _, m := range msgs {
			if m.Channel != "/meta/handshake" {
				continue
			}
			if m.Successful == nil || !*m.Successful || m.ClientID == "" {
				return fmt.Errorf("handshake refused: %s", frame)
			}
			c.id = m.ClientID
		}
	}
	// The first connect in a frame of its own, as the official client sends every message
	// over websocket (the reference server answers a frame only when all of its messages
	// are answered, and a connect is held); then the subscribes, batched.
	if err := c.write(append(append([]byte{'['}, c.connectMsg()...), ']')); err != nil {
		return err
	}
	if len(channels) == 0 {
		return nil
	}
	b := []byte{'['}
	for i, ch := range channels {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"channel":"/meta/subscribe","clientId":"`...)
		b = append(b, c.id...)
		b = append(b, `","subscription":`...)
		b = strconv.AppendQuote(b, ch)
		b = append(b, `,"id":"`...)
		b = strconv.AppendUint(b, c.seq.Add(1), 10)
		b = c.withExt(append(b, '"'))
		b = append(b, '}')
	}
	if err := c.write(append(b, ']')); err != nil {
		return err
	}
	for c.subAcks < len(channels) && c.subErr == nil {
		frame, err := c.read()
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		c.handle(frame)
	}
	return c.subErr
}

func (c *fayeClient) withExt(b []byte) []byte {
	if c.d.ext == nil {
		return b
	}
	return append(append(b, `,"ext":`...), c.d.ext...)
}

func (c *fayeClient) connectMsg() []byte {
	b := append([]byte(`{"channel":"/meta/connect","clientId":"`), c.id...)
	b = append(b, `","connectionType":"websocket","id":"`...)
	b = strconv.AppendUint(b, c.seq.Add(1), 10)
	return append(c.withExt(append(b, '"')), '}')
}

func (c *fayeClient) read() ([]byte, error) { return c.ws.readMessage() }

func (c *fayeClient) write(frame []byte) error { return c.ws.writeText(frame) }

// ended is called by the poller once the connection is gone.
func (c *fayeClient) ended() {
	if !c.closing.Load() {
		c.d.errs.Add(1)
	}
	c.ws.close()
	close(c.done)
}

var (
	successfulKey = []byte(`"successful"`)
	succeededKey  = []byte(`"successful":true`)
	metaChannel   = []byte(`"/meta/`)
)

// handle processes one frame. Frames of deliveries and publish acknowledgements only (every
// frame under load: a server may send both in one frame) are scanned for their timestamps
// and acknowledgements without decoding; a frame with a meta reply, or a "successful" that is
// not exactly true, is decoded in full.
func (c *fayeClient) handle(frame []byte) {
	if acks := bytes.Count(frame, successfulKey); !bytes.Contains(frame, metaChannel) && bytes.Count(frame, succeededKey) == acks {
		c.d.pubOK.Add(int64(acks))
		for i := 0; i < len(frame); {
			var ts int64
			ts, i = stamp(frame, i)
			if ts >= 0 && c.onDeliver != nil {
				c.onDeliver(ts)
			}
		}
		return
	}
	var msgs []fayeMsg
	if err := json.Unmarshal(frame, &msgs); err != nil {
		c.d.errs.Add(1)
		return
	}
	for _, m := range msgs {
		ok := m.Successful != nil && *m.Successful
		switch {
		case m.Channel == "/meta/connect":
			if !ok {
				c.d.errs.Add(1)
				if m.Advice != nil && m.Advice.Reconnect == "none" || m.Advice != nil && m.Advice.Reconnect == "handshake" {
					return // the session is gone: this client stops receiving, counted as losses
				}
			}
			if m.Advice != nil && m.Advice.Interval > 0 {
				time.Sleep(time.Duration(m.Advice.Interval) * time.Millisecond)
			}
			if !c.closing.Load() && c.write(append(append([]byte{'['}, c.connectMsg()...), ']')) != nil {
				c.d.errs.Add(1)
			}
		case m.Channel == "/meta/subscribe":
			if !ok {
				c.subErr = fmt.Errorf("subscribe refused: %s", m.Error)
			}
			c.subAcks++
		case len(m.Channel) > 6 && m.Channel[:6] == "/meta/":
		case m.Successful != nil:
			if ok {
				c.d.pubOK.Add(1)
			} else {
				c.d.errs.Add(1)
			}
		case m.Data != nil && c.onDeliver != nil:
			if ts, _ := stamp(m.Data, 0); ts >= 0 {
				c.onDeliver(ts)
			}
		}
	}
}

// publish sends data (a JSON value) to a channel. Several (channel, data) pairs in one call
// go out as one batched frame.
func (c *fayeClient) publish(pairs ...[]byte) error {
	if len(pairs)%2 != 0 {
		return errors.New("publish: channel without data")
	}
	b := make([]byte, 0, 64+len(pairs[len(pairs)-1])*len(pairs))
	b = append(b, '[')
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"channel":`...)
		b = strconv.AppendQuote(b, string(pairs[i]))
		b = append(b, `,"data":`...)
		b = append(b, pairs[i+1]...)
		b = append(b, `,"clientId":"`...)
		b = append(b, c.id...)
		b = append(b, `","id":"`...)
		b = strconv.AppendUint(b, c.seq.Add(1), 10)
		b = append(c.withExt(append(b, '"')), '}')
	}
	return c.write(append(b, ']'))
}

// close ends the connection; the poller sees it end and lets go of it.
func (c *fayeClient) close() {
	c.closing.Store(true)
	c.ws.shutdown()
	<-c.done
}

// dialAll opens n clients with up to conc handshakes in flight; open(i) opens client i.
func dialAll[T any](ctx context.Context, n, conc int, open func(ctx context.Context, i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := open(ctx, i)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("client %d of %d: %w", i, n, err); cancel() })
					return
				}
				out[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return out, firstErr
	}
	return out, ctx.Err()
}
