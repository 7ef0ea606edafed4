package bayeux

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// encodeBatchReference is the encoder EncodeBatch replaced: json.Marshal of every reply.
func encodeBatchReference(replies []Reply, deliveries [][]byte) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	n := 0
	for _, r := range replies {
		data, err := json.Marshal(r)
		if err != nil {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(data)
		n++
	}
	for _, d := range deliveries {
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(d)
		n++
	}
	b.WriteByte(']')
	return b.Bytes()
}

// sampleReplies are the shapes the engine sends, plus odd values in every field.
func sampleReplies(s string) []Reply {
	interval, timeout := int64(0), int64(45000)
	raw := json.RawMessage(s)
	return []Reply{
		{ID: json.RawMessage(`"1"`), ClientID: "k3j4", Channel: Connect, Successful: true, Advice: &Advice{Reconnect: "retry", Interval: &interval, Timeout: &timeout}},
		{ID: json.RawMessage(`"2f"`), ClientID: "k3j4", Channel: "/conversations/65f1", Successful: true},
		{ID: json.RawMessage(`"3"`), ClientID: "k3j4", Channel: Subscribe, Successful: true, Subscription: json.RawMessage(`"/conversations/65f1"`)},
		{ID: json.RawMessage(`42`), ClientID: "k", Channel: Handshake, Successful: true, Version: Version, SupportedConnectionTypes: ConnectionTypes, Advice: &Advice{Reconnect: "retry", Interval: &interval}},
		ReplyTo(Message{Channel: "/x"}).Fail(ChannelForbidden("/x")),
		{Advice: &Advice{Reconnect: "none"}},
		{},
		{ID: raw, ClientID: s, Channel: s, Version: s, Error: s, SupportedConnectionTypes: []string{s, ""}, Subscription: raw, Advice: &Advice{Reconnect: s, Timeout: &timeout}},
		{ID: json.RawMessage(`"a<b>&c"`), Subscription: json.RawMessage(`[ "/a" , "/b\u2028" ]`)},
		{ID: json.RawMessage(`{"x": [1, 2]}`), Channel: "é\u2028<\xff>"},
		{ID: json.RawMessage(`"unterminated`)},
		{Subscription: json.RawMessage(`not json`)},
	}
}

func TestEncodeBatchMatchesMarshal(t *testing.T) {
	for _, s := range []string{`"s1"`, `"with space"`, `""`, `null`, `7`, "\"\xff\"", `"<script>"`, `"a\"b"`, `nope`, ``} {
		replies := sampleReplies(s)
		deliveries := [][]byte{[]byte(`{"channel":"/a","data":1}`), []byte(`{"channel":"/b","data":{}}`)}
		for i := range replies {
			for _, d := range [][][]byte{nil, deliveries} {
				got, want := EncodeBatch(replies[i:i+1], d), encodeBatchReference(replies[i:i+1], d)
				if !bytes.Equal(got, want) {
					t.Errorf("EncodeBatch(%+v) =\n%s\nwant\n%s", replies[i], got, want)
				}
			}
		}
		if got, want := EncodeBatch(replies, deliveries), encodeBatchReference(replies, deliveries); !bytes.Equal(got, want) {
			t.Errorf("EncodeBatch(all with %q) =\n%s\nwant\n%s", s, got, want)
		}
	}
}

// FuzzEncodeBatchReference: replies with any text in any field encode as json.Marshal does.
func FuzzEncodeBatchReference(f *testing.F) {
	for _, s := range []string{`"1"`, `{"a": 1}`, "<\u2028>", `"\ud800"`, "x\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		replies := sampleReplies(s)
		if got, want := EncodeBatch(replies, nil), encodeBatchReference(replies, nil); !bytes.Equal(got, want) {
			t.Fatalf("EncodeBatch(%q) =\n%s\nwant\n%s", s, got, want)
		}
	})
}

// FuzzAppendJSONTextReference holds AppendJSONText's one pass to encoding/json: it accepts only
// what json.Valid accepts, always JSON that json.Compact compacts to the same bytes, and every
// valid UTF-8 JSON without escapes; anything else is ErrMalformed, or ErrNotText for JSON.
func FuzzAppendJSONTextReference(f *testing.F) {
	for _, s := range []string{`{"a": 1}`, ` [1, "x" ,{}] `, `"\ud800"`, "\"x\xff\"", `{"a":`, `1 2`, `-0.5e+3`, ``, "\t\"\u00e9\"\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := AppendJSONText([]byte("prefix"), raw)
		valid := json.Valid(raw)
		switch {
		case err == nil:
			var want bytes.Buffer
			want.WriteString("prefix")
			if !valid || !utf8.Valid(raw) || json.Compact(&want, raw) != nil || !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("AppendJSONText(%q) = %q; json.Valid %v, json.Compact %q", raw, got, valid, want.Bytes())
			}
		case errors.Is(err, ErrNotText):
			if !valid {
				t.Fatalf("AppendJSONText(%q): ErrNotText for what json.Valid refuses", raw)
			}
		case !errors.Is(err, ErrMalformed):
			t.Fatalf("AppendJSONText(%q): unexpected error %v", raw, err)
		case valid && utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)):
			t.Fatalf("AppendJSONText(%q) refused valid JSON text: %v", raw, err)
		}
		if err != nil && string(got) != "prefix" {
			t.Fatalf("AppendJSONText(%q) failed but changed dst to %q", raw, got)
		}
	})
}

func BenchmarkEncodeBatch(b *testing.B) {
	interval, timeout := int64(0), int64(45000)
	batches := map[string][]Reply{
		"connect": {{ID: json.RawMessage(`"20"`), ClientID: "k3j4h5g6f7d8s9a0p1o2", Channel: Connect, Successful: true, Advice: &Advice{Reconnect: "retry", Interval: &interval, Timeout: &timeout}}},
		"publish": {{ID: json.RawMessage(`"1f"`), ClientID: "k3j4h5g6f7d8s9a0p1o2", Channel: "/conversations/65f1c0a4e4b0a1b2c3d4e5f6", Successful: true}},
		"subscribe": {{ID: json.RawMessage(`"3"`), ClientID: "k3j4h5g6f7d8s9a0p1o2", Channel: Subscribe, Successful: true,
			Subscription: json.RawMessage(`"/conversations/65f1c0a4e4b0a1b2c3d4e5f6"`)}},
	}
	for name, replies := range batches {
		for _, impl := range []struct {
			name string
			fn   func([]Reply, [][]byte) []byte
		}{{"append", EncodeBatch}, {"marshal", encodeBatchReference}} {
			b.Run(name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					impl.fn(replies, nil)
				}
			})
		}
	}
}
