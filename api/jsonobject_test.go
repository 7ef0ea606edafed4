package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

var objectSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, "\t{\"a\" :\n\"x\" , \"b\":[1,{\"c\":\"]}\"}],\"d\":null}\r\n",
	`{"s":"q\"uote\\","n":-1.5e3,"t":true,"f":false,"o":{"k":{"k":[]}},"e":""}`,
	`{"\u00e9t\u00e9":"summer","a\"b":1}`, `{"dup":1,"dup":2}`, `{"\ud800":1}`,
	`[1]`, `null`, `"x"`, `1`, `{"a":}`, `{"a":1,}`, `{"a" 1}`, `{"a":1}{`, ``, ` `, `{`,
	`{"content":"bench_t:1733345000000000000","client_message_id":"cm-42"}`,
}

// TestSplitObject: splitObject gives what json.Unmarshal into Params gives, input by input.
func TestSplitObject(t *testing.T) {
	for _, s := range objectSeeds {
		checkSplitObject(t, []byte(s))
	}
}

// FuzzSplitObject: the same equivalence on any input.
func FuzzSplitObject(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkSplitObject)
}

func checkSplitObject(t *testing.T, body []byte) {
	if !utf8.Valid(body) {
		return // DecodeParams refuses it before; encoding/json would rewrite it
	}
	var want Params
	wantOK := json.Unmarshal(body, &want) == nil && want != nil
	got, ok := splitObject(body)
	if ok != wantOK {
		t.Fatalf("splitObject(%q): ok = %v, encoding/json %v", body, ok, wantOK)
	}
	if len(got) != len(want) {
		t.Fatalf("splitObject(%q) = %q, encoding/json %q", body, got, want)
	}
	for k, v := range want {
		if g, found := got[k]; !found || !bytes.Equal(g, v) {
			t.Fatalf("splitObject(%q)[%q] = %q, encoding/json %q", body, k, g, v)
		}
	}
}

// BenchmarkDecodeParams: a REST post's body, as the load generator sends it, decoded and read.
func BenchmarkDecodeParams(b *testing.B) {
	body := []byte(`{"content":"bench_t:1733345000000000000","client_message_id":"cm-42"}`)
	b.ReportAllocs()
	for b.Loop() {
		p, err := DecodeParams("application/json", body, "")
		if err != nil {
			b.Fatal(err)
		}
		if s, err := p.String("content"); err != nil || s == "" {
			b.Fatal(s, err)
		}
	}
}
