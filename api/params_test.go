package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/convead/chat-server/chat"
)

func TestDecodeParams(t *testing.T) {
	cases := []struct {
		name, ctype, body, query string
		want                     map[string]string // key → raw JSON
		err                      string
	}{
		{"json", "application/json", `{"content":"hi","sender":{"type":"visitor","id":"v1"}}`, "",
			map[string]string{"content": `"hi"`, "sender": `{"type":"visitor","id":"v1"}`}, ""},
		{"json with charset", "application/json; charset=utf-8", `{"a":1}`, "", map[string]string{"a": `1`}, ""},
		{"untyped json", "", ` {"a":"b"}`, "", map[string]string{"a": `"b"`}, ""},
		{"form, rails nesting", "application/x-www-form-urlencoded", "content=hi+there&sender%5Btype%5D=manager&sender[id]=m1", "",
			map[string]string{"content": `"hi there"`, "sender": `{"id":"m1","type":"manager"}`}, ""},
		{"query only", "", "", "count=5&since_id=abc", map[string]string{"count": `"5"`, "since_id": `"abc"`}, ""},
		{"body wins over query", "application/json", `{"count":2}`, "count=5", map[string]string{"count": `2`}, ""},
		{"deep form", "application/x-www-form-urlencoded", "notification[a][b]=1", "", map[string]string{"notification": `{"a":{"b":"1"}}`}, ""},
		{"empty body", "application/json", "  ", "", map[string]string{}, ""},
		{"json array", "application/json", `[1,2]`, "", nil, "invalid_json"},
		{"json null", "application/json", `null`, "", nil, "invalid_json"},
		{"broken json", "application/json", `{"a":`, "", nil, "invalid_json"},
		{"invalid UTF-8 JSON", "application/json", "{\"a\":\"\xff\"}", "", nil, "invalid_encoding"},
		{"invalid UTF-8 form", "application/x-www-form-urlencoded", "a=%FF", "", nil, "invalid_encoding"},
		{"xml", "application/xml", `<a/>`, "", nil, "unsupported_media_type"},
		{"untyped non-json", "", `a=b`, "", nil, "unsupported_media_type"},
		{"value and group", "application/x-www-form-urlencoded", "a=1&a[b]=2", "", nil, "invalid_param"},
		{"bad key", "application/x-www-form-urlencoded", "a[b=1", "", nil, "invalid_param"},
		{"empty segment", "application/x-www-form-urlencoded", "a[]=1", "", nil, "invalid_param"},
		{"too deep", "application/x-www-form-urlencoded", "a" + strings.Repeat("[x]", 9) + "=1", "", nil, "invalid_param"},
		{"bad escape", "application/x-www-form-urlencoded", "a=%zz", "", nil, "invalid_form"},
	}
	for _, tc := range cases {
		p, err := DecodeParams(tc.ctype, []byte(tc.body), tc.query)
		if tc.err != "" {
			if e := chat.AsError(err); e == nil || e.Code != tc.err {
				t.Errorf("%s: err = %v, want %s", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(p) != len(tc.want) {
			t.Errorf("%s: got %d params %v, want %v", tc.name, len(p), p, tc.want)
		}
		for k, v := range tc.want {
			if string(p[k]) != v {
				t.Errorf("%s: %s = %s, want %s", tc.name, k, p[k], v)
			}
		}
	}
}

func TestParamGetters(t *testing.T) {
	p, err := DecodeParams("application/json", []byte(`{"s":"x","n":7,"neg":-1,"b":true,"o":{"k":1},"arr":[1],"nul":null,
		"sender":{"type":"visitor","id":42}}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := p.String("s"); s != "x" || err != nil {
		t.Errorf("String(s) = %q, %v", s, err)
	}
	if s, err := p.String("n"); s != "7" || err != nil {
		t.Errorf("String(n) = %q, %v", s, err)
	}
	if s, err := p.String("missing"); s != "" || err != nil {
		t.Errorf("String(missing) = %q, %v", s, err)
	}
	if s, err := p.String("nul"); s != "" || err != nil {
		t.Errorf("String(nul) = %q, %v", s, err)
	}
	for _, k := range []string{"b", "o", "arr"} {
		if _, err := p.String(k); err == nil {
			t.Errorf("String(%s) accepted a non-string", k)
		}
	}
	if n, err := p.Int("n"); n != 7 || err != nil {
		t.Errorf("Int(n) = %d, %v", n, err)
	}
	for _, k := range []string{"neg", "s", "b"} {
		if _, err := p.Int(k); err == nil {
			t.Errorf("Int(%s) accepted %s", k, p[k])
		}
	}
	if o, err := p.Object("o"); string(o) != `{"k":1}` || err != nil {
		t.Errorf("Object(o) = %s, %v", o, err)
	}
	if _, err := p.Object("arr"); err == nil {
		t.Error("Object(arr) accepted an array")
	}
	if s, ok, err := p.Sender(); !ok || err != nil || s != (Sender{"visitor", "42"}) {
		t.Errorf("Sender = %+v, %v, %v", s, ok, err)
	}
	for _, body := range []string{`{"sender":{"type":"admin","id":"x"}}`, `{"sender":{"type":"visitor"}}`, `{"sender":"v1"}`, `{"sender":{"type":["visitor"],"id":"x"}}`} {
		p, _ := DecodeParams("application/json", []byte(body), "")
		if _, _, err := p.Sender(); err == nil {
			t.Errorf("Sender accepted %s", body)
		}
	}
}

func TestParamSeq(t *testing.T) {
	cases := []struct {
		name, body, query string
		want              string // "" for absent
		err               string
	}{
		{"absent", `{}`, "", "", ""},
		{"null", `{"after_seq":null}`, "", "", ""},
		{"zero is given", `{"after_seq":0}`, "", "0", ""},
		{"JSON number", `{"after_seq":42}`, "", "42", ""},
		{"JSON string", `{"after_seq":"42"}`, "", "42", ""},
		{"query", ``, "after_seq=7", "7", ""},
		{"negative", `{"after_seq":-1}`, "", "", "invalid_after_seq"},
		{"fraction", `{"after_seq":1.5}`, "", "", "invalid_after_seq"},
		{"word", ``, "after_seq=last", "", "invalid_after_seq"},
		{"object", `{"after_seq":{"a":1}}`, "", "", "invalid_param"},
	}
	for _, tc := range cases {
		p, err := DecodeParams("application/json", []byte(tc.body), tc.query)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		n, err := p.Seq("after_seq")
		got := ""
		if n != nil {
			got = fmt.Sprint(*n)
		}
		code := ""
		if e := chat.AsError(err); e != nil {
			code = e.Code
		}
		if got != tc.want || code != tc.err || (err != nil) != (tc.err != "") {
			t.Errorf("%s: Seq = %q, %v; want %q, %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// FuzzDecodeParams: no input panics, and whatever is accepted has JSON values only.
func FuzzDecodeParams(f *testing.F) {
	f.Add("application/json", `{"sender":{"type":"visitor","id":"v"},"content":"x"}`, "count=1")
	f.Add("application/x-www-form-urlencoded", "sender[type]=visitor&sender[id]=v&content=x", "")
	f.Add("", "a[b][c]=1", "a=%00")
	f.Fuzz(func(t *testing.T, ctype, body, query string) {
		p, err := DecodeParams(ctype, []byte(body), query)
		if err != nil {
			if chat.AsError(err) == nil {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		for k := range p {
			_, _ = p.String(k)
			_, _ = p.Int(k)
			_, _ = p.Object(k)
		}
		_, _, _ = p.Sender()
	})
}
