package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/convead/chat-server/faye"
	"github.com/convead/chat-server/faye/bayeux"
	"github.com/convead/chat-server/faye/client"
	"github.com/convead/chat-server/faye/sockloop"
	"github.com/convead/chat-server/origin"
)

// Config configures how the engine is served.
type Config struct {
	// Mount is the path of the Bayeux endpoint, e.g. "/faye"; every path under it works too.
	Mount string
	// Origins governs cross-origin requests and websocket upgrades (before the organisation is
	// known; the engine checks again at handshake).
	Origins *origin.Registry
	// ClientJSPath is a file served at <mount>/client.js and <mount>.js (e.g. the official
	// Faye browser bundle); empty serves the server's own client (package faye/client).
	ClientJSPath string
	// MaxFrameBytes bounds websocket frames.
	MaxFrameBytes int
}

// streamTimeout bounds an EventSource stream; the client reopens it after.
const streamTimeout = 24 * time.Hour

// handler serves the engine over HTTP.
type handler struct {
	e    *faye.Engine
	ecfg faye.Config // the engine's timings and limits
	cfg  Config
	log  *slog.Logger

	rxOnce sync.Once // the websocket event loop starts with the first websocket
	rx     *sockloop.Loop
	rxErr  error
	ctx    context.Context // of websocket message processing: ends when the loop closes
	stop   context.CancelFunc
}

func newHandler(e *faye.Engine, cfg Config) *handler {
	return &handler{e: e, ecfg: e.Config(), cfg: cfg, log: e.Logger()}
}

// Register mounts the Bayeux endpoint of e on app, and sets what the transports need of app's
// HTTP server: the write timeout of EventSource streams, and hijacked websockets left open. It
// fails if the configured client bundle cannot be read.
func Register(app *fiber.App, e *faye.Engine, cfg Config) error {
	if err := registerClientJS(app, cfg.Mount, cfg.ClientJSPath); err != nil {
		return err
	}
	h := newHandler(e, cfg)
	app.Server().HeaderReceived = requestConfig
	// A websocket leaves fasthttp after its upgrade (see websocket.go): fasthttp must not
	// close hijacked connections when the hijack handler returns. Whoever hijacks closes.
	app.Server().KeepHijackedConns = true
	app.All(cfg.Mount, h.serve)
	app.All(cfg.Mount+"/*", h.serve)
	return nil
}

// requestConfig gives EventSource requests a write timeout long enough for a stream (fasthttp
// applies the server's write timeout to streamed bodies too): the fasthttp server's
// HeaderReceived.
func requestConfig(header *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if bytes.Contains(header.Peek(fiber.HeaderAccept), []byte("text/event-stream")) {
		return fasthttp.RequestConfig{WriteTimeout: streamTimeout}
	}
	return fasthttp.RequestConfig{}
}

// registerClientJS serves the browser client at <mount>/client.js and <mount>.js: the file at
// path when it is set (read once, at start), the server's own client otherwise.
func registerClientJS(app *fiber.App, mount, path string) error {
	js := []byte(client.Script())
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read the Faye client bundle (faye.client_js_path) %s: %w", path, err)
		}
		js = b
	}
	sum := sha1.Sum(js)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	serve := func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderETag, etag)
		// Revalidated on every load: a new server version takes effect at once, and an
		// unchanged script costs a 304.
		c.Set(fiber.HeaderCacheControl, "public, max-age=0, must-revalidate")
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		if inm := c.Get(fiber.HeaderIfNoneMatch); inm != "" && strings.Contains(inm, etag) {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
		return c.Send(js)
	}
	app.Get(mount+".js", serve)
	app.Get(mount+"/client.js", serve)
	return nil
}

func badRequest(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	return c.Status(fiber.StatusBadRequest).SendString("Bad request")
}

// serve dispatches a request under the mount to its transport.
func (h *handler) serve(c *fiber.Ctx) error {
	o, host := c.Get(fiber.HeaderOrigin), string(c.Request().Host())
	if !h.cfg.Origins.Allowed(o, host) {
		c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
		return c.Status(fiber.StatusForbidden).SendString("Forbidden origin: add it to http.allowed_origins")
	}
	if isUpgrade(c) {
		return h.upgrade(c)
	}
	if o != "" {
		c.Set(fiber.HeaderAccessControlAllowOrigin, o)
		c.Set(fiber.HeaderAccessControlAllowCredentials, "true")
		c.Vary(fiber.HeaderOrigin)
	}
	if c.Method() == fiber.MethodOptions || c.Get(fiber.HeaderAccessControlRequestMethod) != "" {
		if o == "" {
			c.Set(fiber.HeaderAccessControlAllowOrigin, "*")
		}
		c.Set(fiber.HeaderAccessControlAllowHeaders, "Accept, Authorization, Content-Type, Pragma, X-Requested-With")
		c.Set(fiber.HeaderAccessControlAllowMethods, "POST, GET")
		c.Set(fiber.HeaderAccessControlMaxAge, "86400")
		return c.SendStatus(fiber.StatusOK)
	}
	switch c.Method() {
	case fiber.MethodPost:
		return h.servePost(c)
	case fiber.MethodGet:
		if strings.Contains(c.Get(fiber.HeaderAccept), "text/event-stream") {
			return h.serveEventSource(c)
		}
		return h.serveJSONP(c)
	}
	return badRequest(c)
}

// servePost is long-polling and cross-origin long-polling: a JSON body, or a form (or
// text/plain, as browsers send cross-origin) carrying message=<JSON>.
func (h *handler) servePost(c *fiber.Ctx) error {
	body := c.Body()
	ctype := string(c.Request().Header.ContentType())
	if !strings.HasPrefix(ctype, "application/json") {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("message") {
			return badRequest(c)
		}
		body = []byte(form.Get("message"))
	}
	msgs, err := bayeux.DecodeBatch(body, h.ecfg.MaxBatch)
	if err != nil {
		return h.refuse(c, err)
	}
	out := h.e.Answer(c.Context(), body, msgs, bayeux.LongPolling, peerOf(c))
	setJSONHeaders(c)
	return c.Send(out)
}

func (h *handler) refuse(c *fiber.Ctx, err error) error {
	h.log.Debug("faye: bad request", "err", err.Error(), "remote", c.IP())
	if strings.Contains(err.Error(), bayeux.ErrTooMany.Error()) {
		c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
		return c.Status(fiber.StatusRequestEntityTooLarge).SendString("Too many messages in one batch")
	}
	return badRequest(c)
}

// serveJSONP is callback-polling: GET ?message=<JSON>&jsonp=<callback>.
func (h *handler) serveJSONP(c *fiber.Ctx) error {
	args := c.Context().QueryArgs()
	if !args.Has("message") {
		return badRequest(c)
	}
	callback := bayeux.DefaultCallback
	if args.Has("jsonp") {
		callback = string(args.Peek("jsonp"))
	}
	if !bayeux.ValidCallback(callback) {
		return badRequest(c)
	}
	raw := args.Peek("message")
	msgs, err := bayeux.DecodeBatch(raw, h.ecfg.MaxBatch)
	if err != nil {
		return h.refuse(c, err)
	}
	out := h.e.Answer(c.Context(), raw, msgs, bayeux.CallbackPolling, peerOf(c))
	c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	// A JSONP reply must never be rendered or sniffed as a page of the server's origin.
	c.Set(fiber.HeaderContentDisposition, "attachment; filename=f.txt")
	return c.Send(bayeux.JSONP(callback, out))
}

func setJSONHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentType, "application/json; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
}

// peerOf is what a request tells of its client.
func peerOf(c *fiber.Ctx) faye.Peer {
	return faye.Peer{IP: c.IP(), Origin: c.Get(fiber.HeaderOrigin), Host: string(c.Request().Host())}
}

// serveEventSource streams a session's deliveries: GET <mount>/<clientId> with
// Accept: text/event-stream. A GET carries no ext, so a session opened with a token is
// streamed only to a request showing it as Authorization: Bearer.
func (h *handler) serveEventSource(c *fiber.Ctx) error {
	id := strings.TrimPrefix(strings.TrimPrefix(c.Path(), h.cfg.Mount), "/")
	token, _ := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	cons := h.e.StreamClient(id, token)
	if cons == nil {
		return badRequest(c)
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-store")
	ping := h.ecfg.Ping
	conn := c.Context().Conn()
	// The stream writer runs after the handler returns: it must not touch c.
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer h.e.Release(cons)
		// Each write gets writeTimeout, as on a websocket: a client that stops reading is cut
		// then, not when the whole stream's write timeout (StreamTimeout) runs out, which
		// would keep its connection and goroutine for a day. The last one bounds fasthttp's
		// end of the body.
		stall := func() { _ = conn.SetWriteDeadline(time.Now().Add(writeTimeout)) }
		defer stall()
		end := time.NewTimer(streamTimeout)
		defer end.Stop()
		tick := time.NewTicker(ping)
		defer tick.Stop()
		stall()
		if _, err := w.WriteString("retry: 5000\r\n\r\n"); err != nil || w.Flush() != nil {
			return
		}
		for {
			select {
			case <-end.C:
				return
			case <-cons.Wake():
				stall()
				for _, msg := range cons.TakeAll() {
					w.WriteString("data: [")
					w.Write(msg)
					w.WriteString("]\r\n\r\n")
				}
			case <-tick.C:
				stall()
				w.WriteString(":\r\n\r\n")
			case <-cons.Done():
				stall()
				_ = w.Flush()
				return
			}
			if err := w.Flush(); err != nil {
				return // the client went away
			}
		}
	})
	return nil
}
