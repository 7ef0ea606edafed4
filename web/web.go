// Package web serves the manager console (/console) and the visitor demo page (/demo): plain
// HTML, CSS and ES modules embedded in the binary, with no build step. The pages talk to the
// server like any client: the REST API and the Faye endpoint of the same origin.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
)

//go:embed static
var static embed.FS

// head is the pages' common <head> content (the template "head").
//
//go:embed partials/head.html
var head string

// AssetPrefix is where the pages' scripts and styles are served.
const AssetPrefix = "/web/"

// ContentSecurityPolicy allows the pages only their own origin: scripts (the modules and the
// Faye client), styles, and connections (fetch, long-polling, websocket, EventSource). No
// inline script or style, no framing, no form posts, no plugins.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Config configures the pages.
type Config struct {
	// FayeMount is the Bayeux endpoint (faye.mount); the pages load <mount>/client.js.
	FayeMount string
}

type file struct {
	body  []byte
	etag  string
	ctype string
}

// Register mounts /console, /demo and their assets on app.
func Register(app *fiber.App, cfg Config) error {
	pages := map[string]string{"/console": "console.html", "/demo": "demo.html"}
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		if path.Ext(name) == ".html" {
			if body, err = render(name, body, cfg); err != nil {
				return err
			}
		}
		ctype, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("web asset %s: no content type for its extension", name)
		}
		sum := sha256.Sum256(body)
		files[name] = file{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load web assets: %w", err)
	}
	for route, name := range pages {
		f := files[name]
		app.Get(route, func(c *fiber.Ctx) error { return serve(c, f) })
	}
	app.Get(AssetPrefix+":name", func(c *fiber.Ctx) error {
		f, ok := files[c.Params("name")]
		if !ok || path.Ext(c.Params("name")) == ".html" {
			return c.Status(fiber.StatusNotFound).SendString("not found")
		}
		return serve(c, f)
	})
	return nil
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// render fills in the Faye mount, the one setting the pages need from the server.
func render(name string, body []byte, cfg Config) ([]byte, error) {
	t, err := template.New(name).Parse(head)
	if err == nil {
		t, err = t.Parse(string(body))
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, cfg); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return out.Bytes(), nil
}

// serve sends an embedded file. The names carry no version, so browsers revalidate every time
// (no-cache) and get a 304 while the binary is the same.
func serve(c *fiber.Ctx, f file) error {
	c.Set(fiber.HeaderContentSecurityPolicy, ContentSecurityPolicy)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderETag, f.etag)
	if match := c.Get(fiber.HeaderIfNoneMatch); match != "" && strings.Contains(match, f.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, f.ctype)
	return c.Send(f.body)
}
