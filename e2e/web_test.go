package e2e

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/chat"
	"github.com/convead/chat-server/config"
	"github.com/convead/chat-server/web"
)

// pageLinks returns the URLs the server logged for the console and the demo page, by message.
func pageLinks(t *testing.T, logs string) map[string]string {
	t.Helper()
	links := map[string]string{}
	for _, line := range strings.Split(logs, "\n") {
		var e struct{ Msg, URL string }
		if json.Unmarshal([]byte(line), &e) == nil && e.URL != "" {
			links[e.Msg] = e.URL
		}
	}
	return links
}

func fragmentToken(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	v, err := url.ParseQuery(u.Fragment)
	if err != nil || v.Get("token") == "" {
		t.Fatalf("no token in the fragment of %s", link)
	}
	return v.Get("token")
}

// TestDemo: on the embedded defaults the server sets up the demo organisation and logs the
// console and demo links with working tokens for it, and for it only; with web.demo off, with
// MongoDB, or with the pages off, it sets up and prints nothing of the kind.
func TestDemo(t *testing.T) {
	startWith := func(opts ...func(*config.Config)) (*env, map[string]string) {
		var logs syncBuffer
		e := startLogged(t, testConfig(t, opts...), slog.New(slog.NewJSONHandler(&logs, nil)))
		return e, pageLinks(t, logs.String())
	}
	offline := func(e *env) string { // the demo organisation's offline message, if it exists
		r := e.post("/chat/service/v9", token(t, auth.Visitor, web.DemoOrg, "v9"), nil)
		if r.status != http.StatusUnprocessableEntity {
			t.Fatalf("a visitor with nobody on duty: %d %s", r.status, r.raw)
		}
		m, _ := r.obj("error")["message"].(string)
		return m
	}

	t.Run("embedded defaults", func(t *testing.T) {
		e, links := startWith()
		console, demo := links["demo: open the manager console, go on duty"], links["demo: open the shop page in another tab, chat"]
		if !strings.HasPrefix(console, e.base+"/console#token=") || !strings.HasPrefix(demo, e.base+"/demo#token=") {
			t.Fatalf("logged links: %v", links)
		}
		if m := offline(e); !strings.Contains(m, "Open the console") {
			t.Errorf("demo organisation's offline message: %q", m)
		}
		mgr, vis := fragmentToken(t, console), fragmentToken(t, demo)
		// The manager's token opens the demo visitor's conversation; the visitor's posts in it.
		conv := openConversation(t, e, mgr, web.DemoVisitor)
		if conv["org_id"] != web.DemoOrg || conv["manager_id"] != web.DemoManager {
			t.Fatalf("conversation opened with the demo manager token: %v", conv)
		}
		want(t, e.post("/chat/conversation/"+conv["id"].(string), vis, map[string]any{"content": "hi"}), http.StatusCreated)
		// Demo tokens are for the demo organisation only.
		want(t, e.call(http.MethodPut, "/admin/orgs/shop", mgr, map[string]any{"name": "x"}), http.StatusForbidden)
		for _, p := range []string{"/console", "/demo"} {
			if r := e.call(http.MethodGet, p, "", nil); r.status != http.StatusOK || r.header.Get("Content-Security-Policy") != web.ContentSecurityPolicy {
				t.Errorf("GET %s: %d, CSP %q", p, r.status, r.header.Get("Content-Security-Policy"))
			}
		}
	})

	off := map[string]func(*config.Config){
		"web.demo off": func(c *config.Config) { c.Web.Demo = "off" },
		"mongo.uri":    func(c *config.Config) { c.Mongo.URI, c.Mongo.Database = startFerretDB(t), "demo_off" },
	}
	for name, opt := range off {
		t.Run(name, func(t *testing.T) {
			e, links := startWith(opt)
			if len(links) != 1 || links["manager console (sign in with a manager token)"] != e.base+"/console" {
				t.Errorf("logged links: %v", links)
			}
			if m := offline(e); m != chat.DefaultOfflineMessage {
				t.Errorf("the demo organisation exists: offline message %q", m)
			}
			if r := e.call(http.MethodGet, "/console", "", nil); r.status != http.StatusOK {
				t.Errorf("GET /console: %d", r.status)
			}
		})
	}

	t.Run("web.enabled false", func(t *testing.T) {
		e, links := startWith(func(c *config.Config) { c.Web.Enabled = false })
		if len(links) != 0 {
			t.Errorf("logged links: %v", links)
		}
		for _, p := range []string{"/console", "/demo", "/web/console.js"} {
			if r := e.call(http.MethodGet, p, "", nil); r.status != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", p, r.status)
			}
		}
	})
}
