package transport

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/convead/chat-server/faye/client"
)

func TestClientJS(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "faye-browser-min.js")
	if err := os.WriteFile(bundle, []byte("var Faye={};"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"own client when unconfigured", "", client.Script()},
		{"configured bundle", bundle, "var Faye={};"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := fiber.New()
			if err := registerClientJS(app, "/faye", tc.path); err != nil {
				t.Fatal(err)
			}
			for _, url := range []string{"/faye/client.js", "/faye.js"} {
				resp, err := app.Test(httptest.NewRequest(http.MethodGet, url, nil))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				etag := resp.Header.Get("ETag")
				if resp.StatusCode != 200 || string(body) != tc.want || etag == "" ||
					resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
					!strings.Contains(resp.Header.Get("Cache-Control"), "must-revalidate") {
					t.Fatalf("%s: %d %v (%d bytes)", url, resp.StatusCode, resp.Header, len(body))
				}
				req := httptest.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("If-None-Match", etag)
				resp, err = app.Test(req)
				if err != nil || resp.StatusCode != http.StatusNotModified {
					t.Fatalf("%s with its ETag: %v %v", url, resp.StatusCode, err)
				}
				req = httptest.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("If-None-Match", `"stale"`)
				if resp, err = app.Test(req); err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s with a stale ETag: %v %v", url, resp.StatusCode, err)
				}
			}
		})
	}
	if err := registerClientJS(fiber.New(), "/faye", filepath.Join(t.TempDir(), "missing.js")); err == nil {
		t.Fatal("a missing bundle must fail the start")
	}
}

// The embedded client is the one a widget's <script src=".../faye/client.js"> loads: it must
// define window.Faye with the Faye.Client constructor.
func TestOwnClientDefinesFaye(t *testing.T) {
	js := client.Script()
	for _, want := range []string{"Faye.Client", "global.Faye", "'use strict'"} {
		if !strings.Contains(js, want) {
			t.Errorf("client.js lacks %q", want)
		}
	}
}
