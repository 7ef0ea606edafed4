package bayeux

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeBatch(t *testing.T) {
	cases := []struct {
		name string
		body string
		n    int
		err  error
	}{
		{"array", `[{"channel":"/meta/handshake","version":"1.0"},{"channel":"/foo","data":1}]`, 2, nil},
		{"single object", `{"channel":"/meta/handshake"}`, 1, nil},
		{"empty array", `[]`, 0, nil},
		{"nulls and non-objects skipped", `[null,1,"x",{"channel":"/a","data":1}]`, 1, nil},
		{"malformed", `[ }`, 0, ErrMalformed},
		{"primitive", `1`, 0, ErrMalformed},
		{"empty", ``, 0, ErrMalformed},
		{"broken object", `{"channel":`, 0, ErrMalformed},
		{"too many", "[" + strings.Repeat(`{},`, 100) + `{}]`, 0, ErrTooMany},
	}
	for _, tc := range cases {
		msgs, err := DecodeBatch([]byte(tc.body), 100)
		if !errors.Is(err, tc.err) || len(msgs) != tc.n {
			t.Errorf("%s: %d messages, err %v; want %d, %v", tc.name, len(msgs), err, tc.n, tc.err)
		}
	}
}

func TestMessageFields(t *testing.T) {
	msgs, err := DecodeBatch([]byte(`[
		{"channel":"/meta/connect","clientId":"abc","connectionType":"long-polling","advice":{"timeout":0},"id":"1","ext":{"token":"t0k"}},
		{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket","long-polling"],"id":42},
		{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":"long-polling"},
		{"channel":"/foo","data":null},
		{"channel":"/foo"},
		{"channel":5,"clientId":["x"],"ext":"nope","advice":{"timeout":"soon"}}
	]`), 100)
	if err != nil {
		t.Fatal(err)
	}
	c := msgs[0]
	if c.Channel != Connect || c.ClientID != "abc" || c.ConnectionType != LongPolling || c.AdviceTimeout != 0 || string(c.ID) != `"1"` || c.Token != "t0k" {
		t.Errorf("connect = %+v", c)
	}
	h := msgs[1]
	if string(h.ID) != "42" || len(h.ConnectionTypes) != 2 || h.ConnectionTypesNotList {
		t.Errorf("handshake = %+v", h)
	}
	if !msgs[2].ConnectionTypesNotList || msgs[2].ConnectionTypes[0] != LongPolling {
		t.Errorf("string connection types = %+v", msgs[2])
	}
	if !msgs[3].HasData || string(msgs[3].Data) != "null" || msgs[4].HasData {
		t.Errorf("data null vs missing: %+v %+v", msgs[3], msgs[4])
	}
	odd := msgs[5]
	if odd.Channel != "" || odd.ClientID != "" || odd.Token != "" || odd.AdviceTimeout != -1 {
		t.Errorf("wrong-typed fields must read as absent: %+v", odd)
	}
}

func TestSubscriptions(t *testing.T) {
	cases := []struct {
		raw  string
		want []string
		ok   bool
	}{
		{`"/a"`, []string{"/a"}, true},
		{`["/a","/b/**"]`, []string{"/a", "/b/**"}, true},
		{`[]`, nil, false},
		{``, nil, false},
		{`5`, nil, false},
		{`["/a",5]`, nil, false},
	}
	for _, tc := range cases {
		got, ok := Message{Subscription: json.RawMessage(tc.raw)}.Subscriptions()
		if ok != tc.ok || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("Subscriptions(%s) = %v, %v", tc.raw, got, ok)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	cases := map[string]Error{
		"401:abc:Unknown client":                          ClientUnknown("abc"),
		"402:version:Missing required parameter":          ParameterMissing("version"),
		"301:iframe,flash:Connection types not supported": ConntypeMismatch("iframe,flash"),
		"403:/service/abc:Forbidden channel":              ChannelForbidden("/service/abc"),
		"405:/foo/*:Invalid channel":                      ChannelInvalid("/foo/*"),
		"407:/readonly:Failed to publish":                 PublishFailed("/readonly"),
		"500:/conversations/c:Internal server error":      ServerError("/conversations/c"),
		"401::Authentication failed":                      AuthenticationFailed(),
		"403::Authentication required":                    AuthenticationRequired(),
	}
	for want, e := range cases {
		if got := e.String(); got != want {
			t.Errorf("%+v = %q, want %q", e, got, want)
		}
	}
}

func TestEncode(t *testing.T) {
	d, err := EncodeDelivery("/foo", []byte("{\n  \"a\": \"line1\\nline2\"\n}"))
	if err != nil || string(d) != `{"channel":"/foo","data":{"a":"line1\nline2"}}` {
		t.Errorf("EncodeDelivery = %s, %v", d, err)
	}
	if _, err := EncodeDelivery("/foo", []byte("not json")); err == nil {
		t.Error("EncodeDelivery accepted invalid JSON")
	}
	r := ReplyTo(Message{ID: json.RawMessage(`"s1"`), Channel: Subscribe, ClientID: "c1"}).Fail(ChannelForbidden("/x"))
	r.Subscription = json.RawMessage(`"/x"`)
	got := string(EncodeBatch([]Reply{r}, [][]byte{d}))
	want := `[{"id":"s1","clientId":"c1","channel":"/meta/subscribe","successful":false,"subscription":"/x","error":"403:/x:Forbidden channel"},{"channel":"/foo","data":{"a":"line1\nline2"}}]`
	if got != want {
		t.Errorf("EncodeBatch =\n%s\nwant\n%s", got, want)
	}
	if got := string(EncodeBatch(nil, nil)); got != "[]" {
		t.Errorf("empty batch = %s", got)
	}
}

func TestCallbacks(t *testing.T) {
	for _, ok := range []string{"cb", "__jsonp1__", "a.b.$c_1", "jsonpcallback", "A9"} {
		if !ValidCallback(ok) {
			t.Errorf("ValidCallback(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "42", "alert(1)", "a..b", "a.", ".a", "a b", "a;b", "a[0]", "é", strings.Repeat("a", MaxCallbackLen+1)} {
		if ValidCallback(bad) {
			t.Errorf("ValidCallback(%q) = true", bad)
		}
	}
	got := string(JSONP("cb", []byte("[\"a\u2028b\u2029c\"]")))
	if got != `/**/cb(["a\u2028b\u2029c"]);` {
		t.Errorf("JSONP = %q", got)
	}
}

// FuzzDecodeBatch: any body decodes or fails cleanly, and what decodes re-encodes as JSON.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1"}]`,
		`{"channel":"/meta/subscribe","clientId":"x","subscription":["/a","/b"],"ext":{"token":"t"}}`,
		`[null,{},{"id":"z"},{"channel":"/foo","data":{"deep":[1,2,{"x":null}]}}]`,
		`[{"advice":{"timeout":1e400}}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		msgs, err := DecodeBatch([]byte(body), 100)
		if err != nil {
			return
		}
		replies := make([]Reply, 0, len(msgs))
		for _, m := range msgs {
			_, _ = m.Subscriptions()
			replies = append(replies, ReplyTo(m).Fail(ChannelInvalid(m.Channel)))
		}
		if out := EncodeBatch(replies, nil); !json.Valid(out) {
			t.Fatalf("replies to %q are not JSON: %s", body, out)
		}
	})
}

// TestStr: the fast path for strings without escapes reads what encoding/json reads.
func TestStr(t *testing.T) {
	for _, raw := range []string{`"abc"`, `""`, `"a\"b"`, `"\u00e9t\u00e9"`, `"été"`, "\"\xff\"", `42`, `null`, `["a"]`, `"/meta/connect"`} {
		var want string
		if len(raw) > 0 && raw[0] == '"' {
			_ = json.Unmarshal([]byte(raw), &want)
		}
		if got := str(json.RawMessage(raw)); got != want {
			t.Errorf("str(%s) = %q, want %q", raw, got, want)
		}
	}
}
