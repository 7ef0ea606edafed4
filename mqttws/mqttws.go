// Package mqttws serves MQTT over websocket on the main HTTP port (subprotocol "mqtt"), so
// browser and app clients need no second port, and the origin allow-list applies to them as to
// every other browser request. Each socket becomes a net.Conn handed to the broker.
package mqttws

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/origin"
)

// Broker serves one MQTT connection until it ends.
type Broker interface {
	ServeConn(conn net.Conn) error
}

// Register mounts MQTT over websocket at path.
func Register(app *fiber.App, path string, b Broker, origins *origin.Registry, maxFrame int, log *slog.Logger) {
	ws := websocket.New(func(c *websocket.Conn) {
		// The broker closes a connection it served, but not one it refused before serving;
		// fasthttp does not close it either (the Faye transport keeps hijacked connections).
		defer c.Close()
		c.SetReadLimit(int64(maxFrame))
		if err := b.ServeConn(&conn{ws: c}); err != nil && !errors.Is(err, io.EOF) {
			log.Debug("mqtt over websocket ended", "remote", c.RemoteAddr().String(), "err", err.Error())
		}
	}, websocket.Config{
		Subprotocols:     []string{"mqtt"},
		Origins:          []string{"*"}, // checked below with our own policy
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferPool:  &sync.Pool{},
	})
	app.Get(path, func(c *fiber.Ctx) error {
		if !websocket.IsWebSocketUpgrade(c) {
			return fiber.NewError(fiber.StatusUpgradeRequired, "MQTT over websocket: upgrade with subprotocol mqtt")
		}
		if !origins.Allowed(c.Get(fiber.HeaderOrigin), string(c.Request().Host())) {
			return fiber.NewError(fiber.StatusForbidden, "this origin is not in http.allowed_origins")
		}
		return ws(c)
	})
}

// conn adapts a websocket to the byte stream MQTT expects: binary frames in, one frame per
// write out.
type conn struct {
	ws *websocket.Conn
	r  io.Reader // the frame being read
	wm sync.Mutex
}

func (c *conn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errors.New("mqtt over websocket carries binary frames only")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *conn) Write(p []byte) (int, error) {
	c.wm.Lock()
	defer c.wm.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *conn) Close() error                      { return c.ws.Close() }
func (c *conn) LocalAddr() net.Addr               { return c.ws.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr              { return c.ws.RemoteAddr() }
func (c *conn) SetReadDeadline(t time.Time) error { return c.ws.SetReadDeadline(t) }

// SetWriteDeadline takes the write lock: net.Conn allows it during a write, the websocket does
// not.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	return c.ws.SetWriteDeadline(t)
}

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.ws.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
