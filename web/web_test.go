package web

import (
	"io"
	"net"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

func newApp(t *testing.T) *fiber.App {
	t.Helper()
	app := fiber.New()
	if err := Register(app, Config{FayeMount: "/bayeux"}); err != nil {
		t.Fatal(err)
	}
	return app
}

func get(t *testing.T, app *fiber.App, path string, headers ...string) (int, map[string]string, string) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	h := map[string]string{}
	for k := range res.Header {
		h[k] = res.Header.Get(k)
	}
	return res.StatusCode, h, string(body)
}

func TestPagesAndAssets(t *testing.T) {
	app := newApp(t)
	cases := []struct {
		path            string
		status          int
		ctype, contains string
	}{
		{"/console", 200, "text/html; charset=utf-8", `<script src="/bayeux/client.js"></script>`},
		{"/demo", 200, "text/html; charset=utf-8", `<meta name="faye-mount" content="/bayeux">`},
		{"/web/console.js", 200, "text/javascript; charset=utf-8", "import"},
		{"/web/demo.js", 200, "text/javascript; charset=utf-8", "import"},
		{"/web/api.js", 200, "text/javascript; charset=utf-8", "export"},
		{"/web/chat.js", 200, "text/javascript; charset=utf-8", "export class Conversation"},
		{"/web/style.css", 200, "text/css; charset=utf-8", ".console"},
		{"/web/console.html", 404, "", ""}, // pages only at their route, rendered
		{"/web/nope.js", 404, "", ""},
		{"/web/..%2fweb.go", 404, "", ""},
		{"/web/", 404, "", ""},
	}
	for _, tc := range cases {
		status, h, body := get(t, app, tc.path)
		if status != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.path, status, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		want := map[string]string{
			"Content-Type":            tc.ctype,
			"Content-Security-Policy": ContentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-cache",
		}
		for k, v := range want {
			if h[k] != v {
				t.Errorf("GET %s: %s = %q, want %q", tc.path, k, h[k], v)
			}
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		// Revalidation: the same file answers 304 to its ETag.
		if status, _, body := get(t, app, tc.path, "If-None-Match", h["Etag"]); status != 304 || body != "" || h["Etag"] == "" {
			t.Errorf("GET %s with If-None-Match %q = %d %q, want 304", tc.path, h["Etag"], status, body)
		}
		if status, _, _ := get(t, app, tc.path, "If-None-Match", `"other"`); status != 200 {
			t.Errorf("GET %s with another ETag = %d, want 200", tc.path, status)
		}
	}
}

// TestNoBuildStep: every script and module the pages load is served as it is in the
// repository, and nothing outside this origin is referenced.
func TestNoBuildStep(t *testing.T) {
	app := newApp(t)
	src := regexp.MustCompile(`(?:src|href)="([^"]+)"|from '([^']+)'`)
	seen := map[string]bool{}
	queue := []string{"/console", "/demo"}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		status, _, body := get(t, app, path)
		if path == "/bayeux/client.js" { // the Faye door serves it, not this package
			continue
		}
		if status != 200 {
			t.Errorf("GET %s = %d", path, status)
			continue
		}
		for _, m := range src.FindAllStringSubmatch(body, -1) {
			ref := m[1] + m[2]
			switch {
			case strings.HasPrefix(ref, "data:"):
			case strings.HasPrefix(ref, "./"):
				queue = append(queue, AssetPrefix+strings.TrimPrefix(ref, "./"))
			case strings.HasPrefix(ref, "/"):
				queue = append(queue, ref)
			default:
				t.Errorf("%s references %q, outside this origin", path, ref)
			}
		}
	}
	for _, want := range []string{"/web/console.js", "/web/demo.js", "/web/api.js", "/web/chat.js", "/web/style.css", "/bayeux/client.js"} {
		if !seen[want] {
			t.Errorf("%s is not reached from the pages", want)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:8000": "http://127.0.0.1:8000",
		"0.0.0.0:8000":   "http://localhost:8000",
		"[::]:8000":      "http://localhost:8000",
		"[::1]:9000":     "http://[::1]:9000",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := BaseURL(tcp); got != want {
			t.Errorf("BaseURL(%s) = %s, want %s", addr, got, want)
		}
	}
}
