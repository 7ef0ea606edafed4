// Package bayeux is the Bayeux protocol as Faye 1.4 speaks it: decoding request batches,
// building replies with Faye's shapes and error strings, and encoding deliveries. It does no
// I/O, so every byte a client sends can be fuzzed through it.
package bayeux

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// Meta channels.
const (
	Handshake   = "/meta/handshake"
	Connect     = "/meta/connect"
	Subscribe   = "/meta/subscribe"
	Unsubscribe = "/meta/unsubscribe"
	Disconnect  = "/meta/disconnect"
)

// Connection types this server speaks.
const (
	LongPolling            = "long-polling"
	CrossOriginLongPolling = "cross-origin-long-polling"
	CallbackPolling        = "callback-polling"
	WebSocket              = "websocket"
	EventSource            = "eventsource"
)

// ConnectionTypes is what handshake replies advertise.
var ConnectionTypes = []string{LongPolling, CrossOriginLongPolling, CallbackPolling, WebSocket, EventSource}

// SupportsType reports whether t is one of ConnectionTypes.
func SupportsType(t string) bool {
	for _, c := range ConnectionTypes {
		if c == t {
			return true
		}
	}
	return false
}

// Version is the Bayeux version Faye speaks.
const Version = "1.0"

// Message is one decoded client message. Fields keep what the client sent; Has* say whether
// an optional field was present at all, since Faye distinguishes a missing field from an
// empty one.
type Message struct {
	Channel  string
	ID       json.RawMessage // echoed verbatim: Faye clients send strings, anything goes
	ClientID string
	Data     json.RawMessage
	HasData  bool

	Subscription    json.RawMessage // a string or an array of strings
	ConnectionType  string
	ConnectionTypes []string // supportedConnectionTypes
	// ConnectionTypesNotList: supportedConnectionTypes was present but not an array.
	ConnectionTypesNotList bool
	Version                string
	// AdviceTimeout is advice.timeout in milliseconds, or -1 when absent.
	AdviceTimeout int64
	// Token is ext.token, the credential the widget's extension adds. It shares the bytes of
	// the decoded body (a token is a few hundred bytes, in every message of a session): a
	// Token kept beyond the message keeps the body too, so copy it (strings.Clone) to keep it.
	Token string
	// InvalidText: a string of the message (a key, a field, anything inside data) held invalid
	// UTF-8 or an escaped lone surrogate. Such a message is refused, never forwarded.
	InvalidText bool
}

// Errors of DecodeBatch: each means "answer HTTP 400 Bad request".
var (
	ErrMalformed = errors.New("malformed Bayeux request")
	ErrTooMany   = errors.New("too many messages in one batch")
)

// str reads a JSON string, "" for anything else. raw was validated by the decoder, so a
// string without escapes is its own content (the common case, and much cheaper).
func str(raw json.RawMessage) string {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : n-1])
	}
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// Subscriptions returns the channels of a (un)subscribe message: one string or an array of
// strings. ok is false when the field is missing or has another shape.
func (m Message) Subscriptions() (channels []string, ok bool) {
	raw := bytes.TrimSpace(m.Subscription)
	if len(raw) == 0 {
		return nil, false
	}
	if raw[0] == '"' {
		s := str(raw)
		return []string{s}, true
	}
	var list []string
	if raw[0] != '[' || json.Unmarshal(raw, &list) != nil {
		return nil, false
	}
	return list, len(list) > 0
}

// Advice is a reply's advice.
type Advice struct {
	Reconnect string `json:"reconnect"`
	Interval  *int64 `json:"interval,omitempty"`
	Timeout   *int64 `json:"timeout,omitempty"`
}

// Reply is a reply to one message, with Faye's field names.
type Reply struct {
	ID                       json.RawMessage `json:"id,omitempty"`
	ClientID                 string          `json:"clientId,omitempty"`
	Channel                  string          `json:"channel,omitempty"`
	Successful               bool            `json:"successful"`
	Version                  string          `json:"version,omitempty"`
	SupportedConnectionTypes []string        `json:"supportedConnectionTypes,omitempty"`
	Subscription             json.RawMessage `json:"subscription,omitempty"`
	Error                    string          `json:"error,omitempty"`
	Advice                   *Advice         `json:"advice,omitempty"`
}

// ReplyTo starts a reply to m: its id, channel and client id echoed.
func ReplyTo(m Message) Reply {
	return Reply{ID: m.ID, Channel: m.Channel, ClientID: m.ClientID}
}

// Fail makes r an error reply with Faye's "code:params:message" string.
func (r Reply) Fail(e Error) Reply {
	r.Successful = false
	r.Error = e.String()
	return r
}

// Error is a Bayeux error: code, the offending parameters, a message.
type Error struct {
	Code    int
	Params  []string
	Message string
}

// String renders the error the way Faye's client parses it: "403:/foo:Forbidden channel".
func (e Error) String() string {
	var b bytes.Buffer
	b.WriteString(strconv.Itoa(e.Code))
	b.WriteByte(':')
	for i, p := range e.Params {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p)
	}
	b.WriteByte(':')
	b.WriteString(e.Message)
	return b.String()
}

// Faye's errors, those of its catalogue this server sends, with Faye's codes and messages. The
// rest (300 version mismatch, 302 extension mismatch, 400 bad request, 404 unknown channel, 406
// unknown extension) are left out: nothing here has a reason to send them.
func ConntypeMismatch(params ...string) Error {
	return Error{301, params, "Connection types not supported"}
}
func ClientUnknown(params ...string) Error { return Error{401, params, "Unknown client"} }
func ParameterMissing(params ...string) Error {
	return Error{402, params, "Missing required parameter"}
}
func ChannelForbidden(params ...string) Error { return Error{403, params, "Forbidden channel"} }
func ChannelInvalid(params ...string) Error   { return Error{405, params, "Invalid channel"} }
func PublishFailed(params ...string) Error    { return Error{407, params, "Failed to publish"} }
func ServerError(params ...string) Error      { return Error{500, params, "Internal server error"} }

// InvalidText refuses a message whose strings are not valid UTF-8.
func InvalidText() Error { return Error{400, nil, "Invalid UTF-8"} }

// AuthenticationFailed refuses a bad token (SECURITY.md, "Identity").
func AuthenticationFailed() Error { return Error{401, nil, "Authentication failed"} }

// AuthenticationRequired refuses a client without credentials.
func AuthenticationRequired() Error { return Error{403, nil, "Authentication required"} }

// EncodeDelivery encodes a message delivered to subscribers of channel: {"channel":…,"data":…}.
// data must be JSON whose strings are valid text (AppendJSONText); it is compacted, so the
// result never contains a raw line break (EventSource frames depend on that).
func EncodeDelivery(channel string, data []byte) ([]byte, error) {
	b := make([]byte, 0, len(channel)+len(data)+24)
	b = append(b, `{"channel":`...)
	b = appendString(b, channel)
	b = append(b, `,"data":`...)
	b, err := AppendJSONText(b, data)
	if err != nil {
		return nil, fmt.Errorf("delivery to %s: data: %w", channel, err)
	}
	return append(b, '}'), nil
}

// EncodeBatch writes replies followed by already-encoded deliveries as one JSON array. The
// replies read exactly as json.Marshal writes a Reply, without its reflection.
func EncodeBatch(replies []Reply, deliveries [][]byte) []byte {
	size := 2 + 160*len(replies)
	for _, d := range deliveries {
		size += len(d) + 1
	}
	return AppendBatch(make([]byte, 0, size), replies, deliveries)
}

// AppendBatch is EncodeBatch appending to b, for a caller that reuses its buffer.
func AppendBatch(b []byte, replies []Reply, deliveries [][]byte) []byte {
	start := len(b)
	b = append(b, '[')
	for _, r := range replies {
		mark := len(b)
		if mark > start+1 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendReply(b, r); !ok {
			b = b[:mark] // a Reply always marshals; ID and Subscription were validated JSON
		}
	}
	for _, d := range deliveries {
		if len(b) > start+1 {
			b = append(b, ',')
		}
		b = append(b, d...)
	}
	return append(b, ']')
}

// appendReply appends r as json.Marshal writes it: fields in declaration order, empty
// optional fields left out, strings HTML-escaped. ok is false when a raw field is not JSON.
func appendReply(b []byte, r Reply) (_ []byte, ok bool) {
	b = append(b, '{')
	if len(r.ID) > 0 {
		b = append(b, `"id":`...)
		if b, ok = appendRaw(b, r.ID); !ok {
			return b, false
		}
		b = append(b, ',')
	}
	if r.ClientID != "" {
		b = append(b, `"clientId":`...)
		b = appendString(b, r.ClientID)
		b = append(b, ',')
	}
	if r.Channel != "" {
		b = append(b, `"channel":`...)
		b = appendString(b, r.Channel)
		b = append(b, ',')
	}
	b = append(b, `"successful":`...)
	b = strconv.AppendBool(b, r.Successful)
	if r.Version != "" {
		b = append(b, `,"version":`...)
		b = appendString(b, r.Version)
	}
	if len(r.SupportedConnectionTypes) > 0 {
		b = append(b, `,"supportedConnectionTypes":[`...)
		for i, t := range r.SupportedConnectionTypes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, t)
		}
		b = append(b, ']')
	}
	if len(r.Subscription) > 0 {
		b = append(b, `,"subscription":`...)
		if b, ok = appendRaw(b, r.Subscription); !ok {
			return b, false
		}
	}
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	if a := r.Advice; a != nil {
		b = append(b, `,"advice":{"reconnect":`...)
		b = appendString(b, a.Reconnect)
		if a.Interval != nil {
			b = append(b, `,"interval":`...)
			b = strconv.AppendInt(b, *a.Interval, 10)
		}
		if a.Timeout != nil {
			b = append(b, `,"timeout":`...)
			b = strconv.AppendInt(b, *a.Timeout, 10)
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

// plainByte: printable ASCII that encoding/json writes unescaped in a string.
func plainByte(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

func appendString(b []byte, s string) []byte {
	for i := range len(s) {
		if !plainByte(s[i]) {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendRaw appends a raw JSON value as json.Marshal writes a json.RawMessage: compacted,
// HTML-escaped, refused when it is not JSON.
func appendRaw(b []byte, raw json.RawMessage) (_ []byte, ok bool) {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		plain := true
		for _, c := range raw[1 : n-1] {
			if !plainByte(c) || c == ' ' {
				plain = false
				break
			}
		}
		if plain {
			return append(b, raw...), true
		}
	}
	q, err := json.Marshal(raw)
	if err != nil {
		return b, false
	}
	return append(b, q...), true
}

var callbackName = regexp.MustCompile(`^[a-zA-Z_$][a-zA-Z0-9_$]*(\.[a-zA-Z_$][a-zA-Z0-9_$]*)*$`)

// MaxCallbackLen bounds JSONP callback names.
const MaxCallbackLen = 128

// DefaultCallback is the JSONP callback when the request names none.
const DefaultCallback = "jsonpcallback"

// ValidCallback reports whether name is a JSONP callback Faye accepts: a dotted path of
// JavaScript identifiers, nothing that could be an expression.
func ValidCallback(name string) bool {
	return len(name) <= MaxCallbackLen && callbackName.MatchString(name)
}

// JSONP wraps a JSON body for callback-polling: /**/callback(body); with U+2028 and U+2029,
// which JSON allows raw but JavaScript does not, escaped.
func JSONP(callback string, body []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(body) + len(callback) + 8)
	b.WriteString("/**/")
	b.WriteString(callback)
	b.WriteByte('(')
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\u2028"))
		j := bytes.Index(body, []byte("\u2029"))
		if i < 0 || (j >= 0 && j < i) {
			i = j
		}
		if i < 0 {
			b.Write(body)
			break
		}
		b.Write(body[:i])
		if body[i+2] == 0xa8 {
			b.WriteString(`\u2028`)
		} else {
			b.WriteString(`\u2029`)
		}
		body = body[i+3:]
	}
	b.WriteString(");")
	return b.Bytes()
}
