package e2e

import (
	"net/http"
	"testing"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/config"
)

// TestFayeSessionBelongsToItsIdentity: a client id alone never acts on a session. A message
// naming a session with no token (when it was opened with one), another identity's token, or a
// token (when it was opened without) reads exactly as an unknown client id.
func TestFayeSessionBelongsToItsIdentity(t *testing.T) {
	e := fayeEnv(t, func(c *config.Config) { c.Auth.AnonymousOrg = "shop" })
	sTok := token(t, auth.Service, "shop", "s")
	otherOrg := token(t, auth.Service, "other", "s")
	otherSubject := token(t, auth.Service, "shop", "s2")
	cid := e.handshake(sTok)
	anon := e.handshake("")
	ext := func(tok string) string {
		if tok == "" {
			return ""
		}
		return `,"ext":{"token":"` + tok + `"}`
	}
	unknown := func(id string) string { return "401:" + id + ":Unknown client" }
	for _, c := range []struct {
		name, id, tok string
	}{
		{"no token on a token session", cid, ""},
		{"another organisation's token", cid, otherOrg},
		{"another subject's token", cid, otherSubject},
		{"a token on a tokenless session", anon, sTok},
	} {
		for _, msg := range []string{
			`{"channel":"/meta/connect","clientId":"` + c.id + `","connectionType":"long-polling","advice":{"timeout":0}` + ext(c.tok) + `}`,
			`{"channel":"/meta/subscribe","clientId":"` + c.id + `","subscription":"/foo"` + ext(c.tok) + `}`,
			`{"channel":"/meta/unsubscribe","clientId":"` + c.id + `","subscription":"/foo"` + ext(c.tok) + `}`,
			`{"channel":"/meta/disconnect","clientId":"` + c.id + `"` + ext(c.tok) + `}`,
		} {
			if _, r, _ := e.bayeux(msg); len(r) != 1 || r[0]["error"] != unknown(c.id) || r[0]["clientId"] != nil {
				t.Errorf("%s: %s: %v, want %s", c.name, msg, r, unknown(c.id))
			}
		}
		req, _ := http.NewRequest(http.MethodGet, e.base+"/faye/"+c.id, nil)
		req.Header.Set("Accept", "text/event-stream")
		if c.tok != "" {
			req.Header.Set("Authorization", "Bearer "+c.tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: EventSource stream: %d, want 400 as for an unknown client", c.name, resp.StatusCode)
		}
	}
	// A publish naming the session is judged by its own token alone, as with a stale id: the
	// anonymous visitor cannot borrow the service session's rights.
	if _, r, _ := e.bayeux(`{"channel":"/foo","clientId":"` + cid + `","data":1}`); r[0]["successful"] != false {
		t.Errorf("tokenless publish on a service session: %v", r)
	}
	// The sessions survived every attempt, and serve their own identity.
	for id, tok := range map[string]string{cid: sTok, anon: ""} {
		if _, r, _ := e.bayeux(`{"channel":"/meta/connect","clientId":"` + id + `","connectionType":"long-polling","advice":{"timeout":0}` + ext(tok) + `}`); r[0]["successful"] != true {
			t.Errorf("own connect on %s: %v", id, r)
		}
	}
	if _, r, _ := e.bayeux(`{"channel":"/meta/subscribe","clientId":"` + anon + `","subscription":"/service/v9"}`); r[0]["successful"] != true {
		t.Errorf("anonymous subscribe to its own channel: %v", r)
	}
	if _, r, _ := e.bayeux(`{"channel":"/meta/disconnect","clientId":"` + cid + `"` + ext(sTok) + `}`); r[0]["successful"] != true {
		t.Errorf("own disconnect: %v", r)
	}
}
