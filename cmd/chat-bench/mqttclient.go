package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/convead/chat-server/internal/mqttwire"
)

// A minimal MQTT 3.1.1 client for load: CONNECT, SUBSCRIBE at QoS 0, PUBLISH at QoS 0, and one
// goroutine per connection reading PUBLISH packets. A general client library (several
// goroutines and a router per connection) would measure itself as much as the server when a
// thousand of them share two cores with it.

// mqttKeepAlive is the keep-alive announced in CONNECT; pings go out at half of it.
const mqttKeepAlive = 120 * time.Second

type mqttConn struct {
	conn      net.Conn
	r         *bufio.Reader
	wmu       sync.Mutex
	onPublish func(topic string, payload []byte)
	errs      *atomic.Int64
	closing   atomic.Bool
	done      chan struct{}
}

// dialMQTT connects with the given client id (and credentials when user is not empty),
// subscribes to topics and starts reading.
func dialMQTT(ctx context.Context, addr, id, user, password string, topics []string, onPublish func(topic string, payload []byte), errs *atomic.Int64) (*mqttConn, error) {
	d := net.Dialer{Timeout: setupTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial MQTT %s: %w", addr, err)
	}
	c := &mqttConn{conn: conn, r: bufio.NewReaderSize(conn, 4096), onPublish: onPublish, errs: errs, done: make(chan struct{})}
	if err := c.setup(id, user, password, topics); err != nil {
		conn.Close()
		return nil, fmt.Errorf("MQTT client %s: %w", id, err)
	}
	go c.loop()
	return c, nil
}

func (c *mqttConn) setup(id, user, password string, topics []string) error {
	_ = c.conn.SetDeadline(time.Now().Add(setupTimeout))
	flags := byte(mqttwire.CleanSession)
	payload := []string{id}
	if user != "" {
		flags |= mqttwire.UsernameFlag | mqttwire.PasswordFlag
		payload = append(payload, user, password)
	}
	if err := c.write(mqttwire.Connect(flags, mqttKeepAlive, payload...)); err != nil {
		return err
	}
	kind, ack, err := c.read()
	if err != nil {
		return fmt.Errorf("connack: %w", err)
	}
	if kind != 2 || len(ack) != 2 || ack[1] != 0 {
		return fmt.Errorf("connect refused: packet type %d %v", kind, ack)
	}
	if len(topics) > 0 {
		body := binary.BigEndian.AppendUint16(nil, 1)
		for _, t := range topics {
			body = append(mqttwire.AppendString(body, t), 0)
		}
		if err := c.write(mqttwire.Packet(0x82, body)); err != nil {
			return err
		}
		kind, ack, err := c.read()
		if err != nil {
			return fmt.Errorf("suback: %w", err)
		}
		if kind != 9 || len(ack) != 2+len(topics) {
			return fmt.Errorf("subscribe: packet type %d %v", kind, ack)
		}
		for i, code := range ack[2:] {
			if code >= 0x80 {
				return fmt.Errorf("subscribe %s refused", topics[i])
			}
		}
	}
	return c.conn.SetDeadline(time.Time{})
}

// read returns the next packet's type and body.
func (c *mqttConn) read() (byte, []byte, error) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(d&0x7f) << shift
		if d&0x80 == 0 {
			break
		}
		if shift += 7; shift > 21 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	return h >> 4, body, nil
}

func (c *mqttConn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

func (c *mqttConn) loop() {
	defer close(c.done)
	for {
		kind, body, err := c.read()
		if err != nil {
			if !c.closing.Load() {
				c.errs.Add(1)
			}
			return
		}
		if kind != 3 || len(body) < 2 || c.onPublish == nil {
			continue // PINGRESP, or nothing to do
		}
		n := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+n {
			c.errs.Add(1)
			continue
		}
		c.onPublish(string(body[2:2+n]), body[2+n:]) // QoS 0: no packet id
	}
}

// publish sends payload to topic at QoS 0.
func (c *mqttConn) publish(topic string, payload []byte) error {
	return c.write(mqttwire.Packet(0x30, append(mqttwire.AppendString(make([]byte, 0, 2+len(topic)+len(payload)), topic), payload...)))
}

func (c *mqttConn) ping() error { return c.write([]byte{0xc0, 0}) }

func (c *mqttConn) close() {
	c.closing.Store(true)
	_ = c.write([]byte{0xe0, 0}) // DISCONNECT
	c.conn.Close()
	<-c.done
}

// keepAlive pings every client at half the keep-alive until ctx ends.
func keepAlive(ctx context.Context, clients []*mqttConn) {
	t := time.NewTicker(mqttKeepAlive / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range clients {
				if c != nil {
					_ = c.ping()
				}
			}
		}
	}
}

func closeMQTT(cs []*mqttConn) {
	for _, c := range cs {
		if c != nil {
			c.close()
		}
	}
}
