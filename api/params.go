package api

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/convead/chat-server/chat"
)

// Params are the request parameters, merged from the query string and the body (the body
// wins). Every source is normalised to JSON values, so handlers read one shape whether the
// client sent JSON, a form with Rails-style nested keys (`sender[type]=visitor`), or a query.
type Params map[string]json.RawMessage

// maxFormDepth bounds nesting such as a[b][c].
const maxFormDepth = 8

// DecodeParams parses a request's query string and body. It does no I/O; errors are
// chat.Invalid errors fit for the client.
func DecodeParams(contentType string, body []byte, query string) (Params, error) {
	p, err := decodeForm(query)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return p, nil
	}
	mt := contentType
	if mt != "application/json" { // the common case, without ParseMediaType's allocations
		mt, _, _ = mime.ParseMediaType(contentType)
	}
	var fromBody Params
	switch mt {
	case "application/json", "":
		if mt == "" && bytes.TrimSpace(body)[0] != '{' {
			return nil, chat.Invalid("unsupported_media_type", "send JSON or application/x-www-form-urlencoded")
		}
		// encoding/json would silently turn invalid UTF-8 into U+FFFD: refuse it instead.
		if !utf8.Valid(body) {
			return nil, chat.Invalid("invalid_encoding", "the body must be valid UTF-8")
		}
		var ok bool
		if fromBody, ok = splitObject(body); !ok {
			return nil, chat.Invalid("invalid_json", "the body must be a JSON object")
		}
	case "application/x-www-form-urlencoded":
		if fromBody, err = decodeForm(string(body)); err != nil {
			return nil, err
		}
	default:
		return nil, chat.Invalid("unsupported_media_type", "send JSON or application/x-www-form-urlencoded, not %q", mt)
	}
	if len(p) == 0 {
		return fromBody, nil
	}
	for k, v := range fromBody {
		p[k] = v
	}
	return p, nil
}

// decodeForm turns `a=1&b[c]=2` into {"a":"1","b":{"c":"2"}}.
func decodeForm(s string) (Params, error) {
	if s == "" {
		return Params{}, nil
	}
	values, err := url.ParseQuery(s)
	if err != nil {
		return nil, chat.Invalid("invalid_form", "the form or query string is malformed")
	}
	tree := map[string]any{}
	for key, vs := range values {
		// json.Marshal below would silently turn invalid UTF-8 into U+FFFD: refuse it instead.
		if !utf8.ValidString(key) || !utf8.ValidString(vs[len(vs)-1]) {
			return nil, chat.Invalid("invalid_encoding", "parameters must be valid UTF-8")
		}
		path, ok := splitFormKey(key)
		if !ok {
			return nil, chat.Invalid("invalid_param", "parameter name %q is malformed", clip(key))
		}
		node := tree
		for _, seg := range path[:len(path)-1] {
			next, exists := node[seg]
			if !exists {
				child := map[string]any{}
				node[seg], next = child, child
			}
			child, isMap := next.(map[string]any)
			if !isMap {
				return nil, chat.Invalid("invalid_param", "parameter %q is both a value and a group", clip(key))
			}
			node = child
		}
		leaf := path[len(path)-1]
		if _, isMap := node[leaf].(map[string]any); isMap {
			return nil, chat.Invalid("invalid_param", "parameter %q is both a value and a group", clip(key))
		}
		node[leaf] = vs[len(vs)-1]
	}
	p := make(Params, len(tree))
	for k, v := range tree {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, chat.Invalid("invalid_param", "parameter %q cannot be read", clip(k))
		}
		p[k] = raw
	}
	return p, nil
}

// splitFormKey splits `a[b][c]` into [a b c].
func splitFormKey(key string) ([]string, bool) {
	name, rest, _ := strings.Cut(key, "[")
	if name == "" {
		return nil, false
	}
	path := []string{name}
	if rest == "" && !strings.Contains(key, "[") {
		return path, true
	}
	rest = "[" + rest
	for rest != "" {
		if rest[0] != '[' {
			return nil, false
		}
		seg, after, ok := strings.Cut(rest[1:], "]")
		if !ok || seg == "" || strings.ContainsAny(seg, "[") {
			return nil, false
		}
		path = append(path, seg)
		rest = after
	}
	return path, len(path) <= maxFormDepth
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// String returns a string parameter ("" when absent). JSON numbers are accepted as their text,
// since some clients send numeric ids.
func (p Params) String(key string) (string, error) {
	raw, ok := p[key]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	return scalar(key, raw)
}

func scalar(key string, raw json.RawMessage) (string, error) {
	// A string without escapes is its bytes between the quotes: raw is valid JSON, so they
	// hold no control characters.
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : n-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		return n.String(), nil
	}
	return "", chat.Invalid("invalid_param", "%s must be a string", key)
}

// Int returns a non-negative integer parameter (0 when absent).
func (p Params) Int(key string) (int, error) {
	s, err := p.String(key)
	if err != nil || s == "" {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, chat.Invalid("invalid_"+key, "%s must be a non-negative integer", key)
	}
	return n, nil
}

// Seq returns a message sequence number parameter, or nil when absent (0 is a valid value).
func (p Params) Seq(key string) (*uint64, error) {
	s, err := p.String(key)
	if err != nil || s == "" {
		return nil, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, chat.Invalid("invalid_"+key, "%s must be a non-negative integer", key)
	}
	return &n, nil
}

// Strings returns a list parameter: a JSON array of strings, or (from a form) one
// comma-separated string. Absent is nil.
func (p Params) Strings(key string) ([]string, error) {
	raw, ok := p[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, chat.Invalid("invalid_"+key, "%s must be a list of strings", key)
		}
		return list, nil
	}
	s, err := scalar(key, raw)
	if err != nil {
		return nil, err
	}
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list, nil
}

// Object returns a JSON object parameter, or nil when absent.
func (p Params) Object(key string) (json.RawMessage, error) {
	raw, ok := p[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, chat.Invalid("invalid_"+key, "%s must be an object", key)
	}
	return raw, nil
}

// Sender is the `sender` parameter of the REST API (README "REST API").
type Sender struct {
	Type string
	ID   string
}

// Sender returns the sender parameter, and whether it was given.
func (p Params) Sender() (Sender, bool, error) {
	raw, err := p.Object("sender")
	if err != nil || raw == nil {
		return Sender{}, false, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Sender{}, false, chat.Invalid("invalid_sender", "sender must be {\"type\":…, \"id\":…}")
	}
	var s Sender
	for key, dst := range map[string]*string{"type": &s.Type, "id": &s.ID} {
		if raw, ok := fields[key]; ok {
			if *dst, err = scalar("sender."+key, raw); err != nil {
				return Sender{}, false, err
			}
		}
	}
	if s.Type != "visitor" && s.Type != "manager" {
		return Sender{}, false, chat.Invalid("invalid_sender", "sender.type must be visitor or manager")
	}
	if s.ID == "" {
		return Sender{}, false, chat.Invalid("invalid_sender", "sender.id is required")
	}
	return s, true, nil
}

// ListQueryOf reads the parameters of a conversation listing (status, manager_id, visitor_id,
// limit, cursor) and checks them as the listing will.
func ListQueryOf(p Params) (chat.ListQuery, error) {
	var q chat.ListQuery
	var err error
	for key, dst := range map[string]*string{"status": &q.Status, "manager_id": &q.ManagerID, "visitor_id": &q.VisitorID, "cursor": &q.Cursor} {
		if *dst, err = p.String(key); err != nil {
			return q, err
		}
	}
	if q.Limit, err = p.Int("limit"); err != nil {
		return q, err
	}
	return q.Check()
}

// OrgSettingsOf reads the settings of PUT /admin/orgs/:org_id. reassign_after is a Go duration
// such as "15m" ("" or absent: off), so that the unit is always written out.
func OrgSettingsOf(p Params) (chat.OrgSettings, error) {
	var in chat.OrgSettings
	var err error
	for key, dst := range map[string]*string{"name": &in.Name, "chat_offline_message": &in.ChatOfflineMessage, "offline_mode": &in.OfflineMode} {
		if *dst, err = p.String(key); err != nil {
			return in, err
		}
	}
	if in.AllowedOrigins, err = p.Strings("allowed_origins"); err != nil {
		return in, err
	}
	if in.Retention, err = p.Int("retention"); err != nil {
		return in, err
	}
	after, err := p.String("reassign_after")
	if err != nil || after == "" {
		return in, err
	}
	if in.ReassignAfter, err = time.ParseDuration(after); err != nil {
		return in, chat.Invalid("invalid_reassign_after", "reassign_after must be a duration such as \"15m\", not %q", clip(after))
	}
	return in, nil
}
