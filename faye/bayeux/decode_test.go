package bayeux

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeBatchReference is the decoder DecodeBatch replaced, built on encoding/json; DecodeBatch
// must read every body as it does.
func decodeBatchReference(body []byte, max int) ([]Message, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, ErrMalformed
	}
	var elems []json.RawMessage
	switch body[0] {
	case '[':
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	case '{':
		if !json.Valid(body) {
			return nil, ErrMalformed
		}
		elems = []json.RawMessage{body}
	default:
		return nil, ErrMalformed
	}
	if len(elems) > max {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooMany, len(elems), max)
	}
	msgs := make([]Message, 0, len(elems))
	for _, e := range elems {
		if e = bytes.TrimSpace(e); len(e) == 0 || e[0] != '{' {
			continue
		}
		var w struct {
			Channel                  json.RawMessage `json:"channel"`
			ID                       json.RawMessage `json:"id"`
			ClientID                 json.RawMessage `json:"clientId"`
			Data                     json.RawMessage `json:"data"`
			Subscription             json.RawMessage `json:"subscription"`
			ConnectionType           json.RawMessage `json:"connectionType"`
			SupportedConnectionTypes json.RawMessage `json:"supportedConnectionTypes"`
			Version                  json.RawMessage `json:"version"`
			Advice                   json.RawMessage `json:"advice"`
			Ext                      json.RawMessage `json:"ext"`
		}
		if err := json.Unmarshal(e, &w); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		m := Message{
			Channel: str(w.Channel), ClientID: str(w.ClientID), ConnectionType: str(w.ConnectionType),
			Version: str(w.Version), Data: w.Data, HasData: len(w.Data) > 0, Subscription: w.Subscription,
			AdviceTimeout: -1, InvalidText: !validTextReference(e),
		}
		if len(w.ID) > 0 && string(w.ID) != "null" {
			m.ID = w.ID
		}
		switch {
		case len(w.SupportedConnectionTypes) > 0 && w.SupportedConnectionTypes[0] == '[':
			var types []any
			_ = json.Unmarshal(w.SupportedConnectionTypes, &types)
			for _, t := range types {
				if s, ok := t.(string); ok {
					m.ConnectionTypes = append(m.ConnectionTypes, s)
				}
			}
		case len(w.SupportedConnectionTypes) > 0:
			m.ConnectionTypesNotList = true
			m.ConnectionTypes = []string{str(w.SupportedConnectionTypes)}
		}
		var advice struct {
			Timeout *float64 `json:"timeout"`
		}
		if len(w.Advice) > 0 && json.Unmarshal(w.Advice, &advice) == nil && advice.Timeout != nil && *advice.Timeout >= 0 {
			m.AdviceTimeout = int64(*advice.Timeout)
		}
		var ext struct {
			Token json.RawMessage `json:"token"`
		}
		if len(w.Ext) > 0 && json.Unmarshal(w.Ext, &ext) == nil {
			m.Token = str(ext.Token)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// escapeRef matches JSON escapes left to right, so an escaped backslash is never read as the
// start of a \u escape.
var escapeRef = regexp.MustCompile(`\\(?:u([0-9a-fA-F]{4})|.)`)

// validTextReference: raw is UTF-8 and every escaped surrogate is half of a pair.
func validTextReference(raw []byte) bool {
	if !utf8.Valid(raw) {
		return false
	}
	high, end := false, -1 // an unpaired high surrogate escape ended at end
	for _, m := range escapeRef.FindAllSubmatchIndex(raw, -1) {
		var r rune = -1
		if m[2] >= 0 {
			v, _ := strconv.ParseUint(string(raw[m[2]:m[3]]), 16, 32)
			r = rune(v)
		}
		low := r >= 0xdc00 && r <= 0xdfff
		switch {
		case high && low && m[0] == end:
			high = false
			continue
		case high, low:
			return false
		}
		high, end = r >= 0xd800 && r < 0xdc00, m[1]
	}
	return !high
}

// sameDecoding fails t unless DecodeBatch and the reference agree on body: the same
// messages, or errors of the same kind.
func sameDecoding(t *testing.T, body []byte, max int) {
	t.Helper()
	got, gerr := DecodeBatch(body, max)
	want, werr := decodeBatchReference(body, max)
	for _, kind := range []error{ErrMalformed, ErrTooMany} {
		if errors.Is(gerr, kind) != errors.Is(werr, kind) {
			t.Fatalf("DecodeBatch(%q): err %v, reference %v", body, gerr, werr)
		}
	}
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("DecodeBatch(%q): err %v, reference %v", body, gerr, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("DecodeBatch(%q): %d messages, reference %d", body, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(norm(got[i]), norm(want[i])) {
			t.Fatalf("DecodeBatch(%q)[%d] =\n%#v\nreference\n%#v", body, i, got[i], want[i])
		}
	}
}

// norm makes empty and nil raw values compare equal (both mean absent or "" alike).
func norm(m Message) Message {
	if len(m.ID) == 0 {
		m.ID = nil
	}
	if m.Data == nil && !m.HasData {
		m.Data = nil
	}
	if len(m.Subscription) == 0 {
		m.Subscription = nil
	}
	return m
}

func TestDecodeBatchMatchesEncodingJSON(t *testing.T) {
	deep := strings.Repeat("[", 9998) + strings.Repeat("]", 9998)
	bodies := []string{
		` [{"channel":"/a"}] `, "\v[{\"channel\":\"/a\"}]\u00a0", `[{"CHANNEL":"/a","ClientID":"x","Ext":{"TOKEN":"t"}}]`,
		`[{"\u0063hannel":"/a"}]`, "[{\"\u017fubscription\":\"/a\"}]", `[{"channel":"/a","channel":"/b"}]`,
		`[{"channel":"/a\u00e9","data":"x\ud800"}]`, "[{\"channel\":\"/\xff\"}]", `[{"id":null},{"id":""},{"id":[1]}]`,
		`[{"advice":{"timeout":1e400}}]`, `[{"advice":{"timeout":"5"}}]`, `[{"advice":{"timeout":5,"timeout":null}}]`,
		`[{"advice":{"timeout":"x","timeout":5}}]`, `[{"advice":{"timeout":-0}}]`, `[{"advice":{"timeout":1e300}}]`,
		`[{"advice":{"Timeout":2.9}}]`, `[{"advice":[1]}]`, `[{"advice":null}]`, `[{"ext":null},{"ext":[]},{"ext":{"token":5}}]`,
		`[{"supportedConnectionTypes":null}]`, `[{"supportedConnectionTypes":["a",1,"b"]}]`, `[{"supportedConnectionTypes":5}]`,
		`[{"data":null}]`, `[{"data": {"a" : [1, 2] } }]`, `[1,]`, `[,1]`, `[{"a":1,}]`, `[{"a" 1}]`, `[01]`, `[1.]`, `[1e]`,
		`[-]`, `[tru]`, `[nul]`, `["\x"]`, "[\"\x01\"]", `["\u12"]`, `[{}]x`, `[{}] ]`, `{"channel":"/a"}`, `{"channel":"/a"} x`,
		`{"a":}`, `[` + deep + `]`, `[[` + deep + `]]`, `{"data":` + deep + `}`, `{"data":[` + deep + `]}`,
		`[{"data":"\udc00"}]`, `[{"data":"\ud800\udc00"}]`, `[{"data":"\ud800x"}]`, `[{"data":"\ud800\ud800\udc00"}]`,
		`[{"data":"\\udc00"}]`, `[{"data":"\ud800"}]`, `[{"data":["\ud800\u0041"]}]`, "[{\"data\":{\"\xed\xa0\x80\":1}}]",
		"[{\"id\":\"\xc3\"},{\"channel\":\"/ok\"}]", `[{"data":"\uDBFF\uDFFF"}]`,
		`[{},{},{}]`, `[{},1,{}]`, `[{},{},{"a":]`, `[{},{},{}`, `[{"channel":"/a"},null,true,false,"s",-1.5e+3]`,
	}
	for _, b := range bodies {
		for _, max := range []int{1, 2, 100} {
			sameDecoding(t, []byte(b), max)
		}
	}
}

// TestDecodeBatchCorpus: the committed fuzz corpus decodes as encoding/json decodes it.
func TestDecodeBatchCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecodeBatch/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v, %d files", err, len(files))
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(data), "\n", 3)
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "string(") {
			t.Fatalf("%s: not a string corpus entry", name)
		}
		body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameDecoding(t, []byte(body), 100)
	}
}

// FuzzDecodeBatchReference: DecodeBatch reads any body as the encoding/json decoder does.
func FuzzDecodeBatchReference(f *testing.F) {
	for _, s := range []string{
		`[{"channel":"/meta/connect","clientId":"c1","connectionType":"websocket","id":"2","ext":{"token":"t"}}]`,
		`{"channel":"/meta/subscribe","clientId":"x","subscription":["/a","/b"],"ext":{"token":"t"}}`,
		`[null,{},{"id":"z"},{"channel":"/foo","data":{"deep":[1,2,{"x":null}]}}]`,
		`[{"advice":{"timeout":1e400},"Channel":"\u0041"}]`,
	} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, body string, max int) {
		sameDecoding(t, []byte(body), max)
	})
}

func BenchmarkDecodeBatch(b *testing.B) {
	bodies := map[string]string{
		"publish": `[{"channel":"/conversations/65f1c0a4e4b0a1b2c3d4e5f6","data":{"type":"message","text":"Hello, how can I help you today?","client_message_id":"m-1712345678-42","author":{"id":"v-123","kind":"visitor"}},"clientId":"k3j4h5g6f7d8s9a0p1o2","id":"1f","ext":{"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ2aXNpdG9yOjEyMyIsImV4cCI6MTcxMjM0NTY3OH0.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}}]`,
		"connect": `[{"channel":"/meta/connect","clientId":"k3j4h5g6f7d8s9a0p1o2","connectionType":"websocket","id":"20","ext":{"token":"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ2aXNpdG9yOjEyMyIsImV4cCI6MTcxMjM0NTY3OH0.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}}]`,
	}
	for name, body := range bodies {
		for _, impl := range []struct {
			name string
			fn   func([]byte, int) ([]Message, error)
		}{{"onepass", DecodeBatch}, {"encodingjson", decodeBatchReference}} {
			b.Run(name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					if _, err := impl.fn([]byte(body), 100); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestDecodeBatchInvalidText: invalid UTF-8 and lone surrogate escapes anywhere in a message
// mark it; valid text, pairs and escaped backslashes do not.
func TestDecodeBatchInvalidText(t *testing.T) {
	for body, want := range map[string]bool{
		`{"channel":"/a","data":"caf\u00e9 \ud83d\ude00"}`:         false,
		"{\"channel\":\"/a\",\"data\":\"caf\xc3\xa9\"}":            false,
		`{"channel":"/a","data":"\\udc00"}`:                        false,
		"{\"channel\":\"/a\",\"data\":\"\xff\"}":                   true,
		"{\"channel\":\"/a\",\"data\":{\"k\":[\"\xed\xa0\x80\"]}}": true,
		`{"channel":"/a","data":"\udc00"}`:                         true,
		`{"channel":"/a","data":"\ud800"}`:                         true,
		`{"channel":"/a","data":"\ud800\u0041"}`:                   true,
		"{\"channel\":\"/a\xc3\"}":                                 true,
		"{\"\xc3\":1}":                                             true,
		`{"ext":{"token":"\udfff"}}`:                               true,
	} {
		msgs, err := DecodeBatch([]byte(body), 10)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("DecodeBatch(%q): %v, %d messages", body, err, len(msgs))
		}
		if msgs[0].InvalidText != want {
			t.Errorf("DecodeBatch(%q).InvalidText = %v, want %v", body, msgs[0].InvalidText, want)
		}
	}
	msgs, err := DecodeBatch([]byte("[{\"data\":\"\xff\"},{\"data\":\"ok\"}]"), 10)
	if err != nil || len(msgs) != 2 || !msgs[0].InvalidText || msgs[1].InvalidText {
		t.Fatalf("one bad message of two: %v %+v", err, msgs)
	}
}

// TestDecodeOwnedBatchKeepsTheBody: an owned body is decoded as DecodeBatch decodes a copy,
// and its messages point into it (no second copy).
func TestDecodeOwnedBatchKeepsTheBody(t *testing.T) {
	body := []byte(` [{"channel":"/a","data":{"x":1},"clientId":"c1","ext":{"token":"t"}},{"channel":"/b","data":2}] `)
	want, err := DecodeBatch(body, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeOwnedBatch(nil, body, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeOwnedBatch = %+v, DecodeBatch = %+v", got, want)
	}
	if &got[0].Data[0] != &body[bytes.Index(body, []byte(`{"x":1}`))] {
		t.Fatal("the data of an owned body's message is a copy")
	}
}

// TestPlainWord: the eight-byte test agrees with ordinary for every byte value in every
// position, and for words with several unusual bytes (where a borrow could mislead it).
func TestPlainWord(t *testing.T) {
	check := func(w [8]byte) {
		t.Helper()
		want := true
		for _, c := range w {
			want = want && ordinary(c)
		}
		if got := plainWord(binary.LittleEndian.Uint64(w[:])); got != want {
			t.Fatalf("plainWord(%q) = %v, want %v", w[:], got, want)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			w := [8]byte{'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'}
			w[pos] = byte(c)
			check(w)
			w[(pos+3)%8] = byte(255 - c)
			check(w)
		}
	}
	for _, s := range []string{"!!!!!!!!", "########", "[[[[[[[[", "]]]]]]]]", "        ", "~~~~~~~\x7f", "\x00\x00\x00\x00\x00\x00\x00\x00", "!\"#!!!!!", "\x1f\x20\x21\x22\x5b\x5c\x5d\x80"} {
		check([8]byte([]byte(s)))
	}
}
