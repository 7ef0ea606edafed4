package bayeux

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// maxDepth is encoding/json's nesting limit, kept so that the same bodies are refused.
const maxDepth = 10000

// DecodeBatch decodes a request body: a JSON array of messages or a single message object.
// null and non-object elements are skipped, as Faye does. At most max messages are accepted.
//
// It reads the body in one pass (encoding/json would parse every message twice) with
// encoding/json's rules: the same syntax and nesting limit, case-insensitive field names, the
// last of duplicate fields wins, wrong-typed fields read as absent. Messages keep slices of
// one copy of the body, so the caller may reuse body.
func DecodeBatch(body []byte, max int) ([]Message, error) {
	return DecodeOwnedBatch(nil, bytes.Clone(body), max)
}

// DecodeOwnedBatch is DecodeBatch for a body the caller gives away (a websocket message,
// assembled in a buffer of its own): the messages keep slices of body itself, which nobody
// may change afterwards. They are appended to dst[:0], a buffer the caller may reuse (nil: a
// new one).
func DecodeOwnedBatch(dst []Message, body []byte, max int) ([]Message, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || (body[0] != '[' && body[0] != '{') {
		return nil, ErrMalformed
	}
	d := decoder{data: body}
	msgs := dst[:0]
	n := 0
	if d.data[0] == '{' {
		var f fields
		if err := d.object(1, &f); err != nil {
			return nil, err
		}
		msgs, n = append(msgs, f.message(d.bad)), 1
	} else if err := d.batch(max, &msgs, &n); err != nil {
		return nil, err
	}
	d.ws()
	if d.i != len(d.data) {
		return nil, d.fail("after top-level value")
	}
	if n > max {
		return nil, fmt.Errorf("%w: %d, at most %d", ErrTooMany, n, max)
	}
	if msgs == nil {
		msgs = []Message{}
	}
	return msgs, nil
}

// decoder walks validated-as-it-goes JSON; i is the next byte to read. bad records a string
// that is not valid text: invalid UTF-8, or an escaped lone surrogate (encoding/json would read
// both as U+FFFD, but raw values such as data are forwarded as sent).
type decoder struct {
	data   []byte
	i      int
	bad    bool
	spaced bool // whitespace was skipped somewhere
}

func (d *decoder) fail(where string) error {
	if d.i >= len(d.data) {
		return fmt.Errorf("%w: unexpected end of JSON input", ErrMalformed)
	}
	return fmt.Errorf("%w: invalid character %q %s at offset %d", ErrMalformed, d.data[d.i], where, d.i)
}

func (d *decoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
			d.spaced = true
		default:
			return
		}
	}
}

// batch reads the top-level array: messages are decoded while there are at most max of
// them; the rest is only validated and counted.
func (d *decoder) batch(max int, msgs *[]Message, n *int) error {
	d.i++ // '['
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return nil
	}
	for {
		d.ws()
		if d.i < len(d.data) && d.data[d.i] == '{' && *n < max {
			var f fields
			d.bad = false
			if err := d.object(2, &f); err != nil {
				return err
			}
			if *msgs == nil {
				*msgs = make([]Message, 0, 1) // a batch is mostly one message
			}
			*msgs = append(*msgs, f.message(d.bad))
		} else if err := d.value(2); err != nil {
			return err
		}
		*n++
		d.ws()
		if d.i >= len(d.data) {
			return d.fail("")
		}
		switch d.data[d.i] {
		case ']':
			d.i++
			return nil
		case ',':
			d.i++
		default:
			return d.fail("after array element")
		}
	}
}

// fields are a message's raw field values, nil when absent.
type fields struct {
	channel, id, clientID, data, subscription, connectionType, connectionTypes, version, advice, ext []byte
}

// object reads a message object at nesting depth, keeping the fields Bayeux knows.
func (d *decoder) object(depth int, f *fields) error {
	return d.members(depth, func(key []byte, plain bool, val []byte) {
		if p := f.field(key, plain); p != nil {
			*p = val
		}
	})
}

// members reads an object starting at data[i] and calls fn with every member's raw key
// (quoted; plain when it has no escapes and is ASCII) and raw value.
func (d *decoder) members(depth int, fn func(key []byte, plain bool, val []byte)) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: exceeded max depth", ErrMalformed)
	}
	d.i++ // '{'
	d.ws()
	if d.i < len(d.data) && d.data[d.i] == '}' {
		d.i++
		return nil
	}
	for {
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			return d.fail("looking for beginning of object key string")
		}
		ks := d.i
		plain, err := d.str()
		if err != nil {
			return err
		}
		key := d.data[ks:d.i]
		d.ws()
		if d.i >= len(d.data) || d.data[d.i] != ':' {
			return d.fail("after object key")
		}
		d.i++
		d.ws()
		vs := d.i
		if err := d.value(depth + 1); err != nil {
			return err
		}
		fn(key, plain, d.data[vs:d.i:d.i])
		d.ws()
		if d.i >= len(d.data) {
			return d.fail("")
		}
		switch d.data[d.i] {
		case '}':
			d.i++
			return nil
		case ',':
			d.i++
		default:
			return d.fail("after object key:value pair")
		}
	}
}

// value validates and skips one value at nesting depth (counted when it is a container).
func (d *decoder) value(depth int) error {
	if d.i >= len(d.data) {
		return d.fail("")
	}
	switch c := d.data[d.i]; {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		return d.members(depth, func([]byte, bool, []byte) {})
	case c == '[':
		if depth > maxDepth {
			return fmt.Errorf("%w: exceeded max depth", ErrMalformed)
		}
		d.i++
		d.ws()
		if d.i < len(d.data) && d.data[d.i] == ']' {
			d.i++
			return nil
		}
		for {
			d.ws()
			if err := d.value(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(d.data) {
				return d.fail("")
			}
			switch d.data[d.i] {
			case ']':
				d.i++
				return nil
			case ',':
				d.i++
			default:
				return d.fail("after array element")
			}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	default:
		return d.fail("looking for beginning of value")
	}
}

func (d *decoder) literal(lit string) error {
	if len(d.data)-d.i >= len(lit) && string(d.data[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return nil
	}
	for k := 0; k < len(lit) && d.i < len(d.data) && d.data[d.i] == lit[k]; k++ {
		d.i++
	}
	return d.fail("in literal " + lit)
}

func (d *decoder) digits() int {
	s := d.i
	for d.i < len(d.data) && d.data[d.i] >= '0' && d.data[d.i] <= '9' {
		d.i++
	}
	return d.i - s
}

// number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	if d.data[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.data) {
		return d.fail("")
	}
	switch c := d.data[d.i]; {
	case c == '0':
		d.i++
	case c >= '1' && c <= '9':
		d.digits()
	default:
		return d.fail("in numeric literal")
	}
	if d.i < len(d.data) && d.data[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return d.fail("after decimal point in numeric literal")
		}
	}
	if d.i < len(d.data) && (d.data[d.i] == 'e' || d.data[d.i] == 'E') {
		d.i++
		if d.i < len(d.data) && (d.data[d.i] == '+' || d.data[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return d.fail("in exponent of numeric literal")
		}
	}
	return nil
}

// str skips a string starting at data[i] ('"'). plain: no escapes and only ASCII, so the
// bytes between the quotes are the string. Runs of ordinary bytes are skipped eight at a
// time (plainWord): strings are most of a message's bytes (a token, a text), and this loop
// was the decoder's largest cost.
func (d *decoder) str() (plain bool, err error) {
	data, i := d.data, d.i+1
	plain = true
	for {
		for len(data)-i >= 8 && plainWord(binary.LittleEndian.Uint64(data[i:])) {
			i += 8
		}
		for i < len(data) && ordinary(data[i]) {
			i++
		}
		if i >= len(data) {
			d.i = i
			return false, d.fail("")
		}
		switch c := data[i]; {
		case c == '"':
			d.i = i + 1
			return plain, nil
		case c == '\\':
			plain = false
			if i++; i >= len(data) {
				d.i = i
				return false, d.fail("")
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				r, ok := hex4(data[i:])
				if !ok {
					for i < len(data) && isHex(data[i]) {
						i++
					}
					d.i = i
					return false, d.fail("in \\u hexadecimal character escape")
				}
				d.i = i + 4
				if utf16.IsSurrogate(r) {
					d.surrogate(r)
				}
				i = d.i
			default:
				d.i = i
				return false, d.fail("in string escape code")
			}
		case c < 0x20:
			d.i = i
			return false, d.fail("in string literal")
		default: // c >= utf8.RuneSelf
			plain = false
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				d.bad = true
			}
			i += size
		}
	}
}

// ordinary reports whether c stands for itself in a string that stays plain: not a quote,
// a backslash, a control character or a byte of a multi-byte UTF-8 sequence.
func ordinary(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf }

// plainWord reports whether the eight bytes of x (little-endian) are all ordinary. Each
// test is the classic "has a byte below n" (x - n*lo) & ^x & hi, which is exact for the word
// as a whole (a borrow only spreads from a byte that already matched).
func plainWord(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	below := func(v uint64, n uint64) uint64 { return (v - n*lo) & ^v & hi }
	return (x&hi | below(x, 0x20) | below(x^('"'*lo), 1) | below(x^('\\'*lo), 1)) == 0
}

// surrogate checks the escaped surrogate r just read: only a high one followed by an escaped
// low one is text; the low one is consumed with it.
func (d *decoder) surrogate(r rune) {
	if r < 0xdc00 && len(d.data)-d.i >= 6 && d.data[d.i] == '\\' && d.data[d.i+1] == 'u' {
		if lo, ok := hex4(d.data[d.i+2:]); ok && lo >= 0xdc00 && lo <= 0xdfff {
			d.i += 6
			return
		}
	}
	d.bad = true
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// field returns where a member named key goes, nil for members Bayeux ignores. Names match
// case-insensitively, as encoding/json matches them.
func (f *fields) field(key []byte, plain bool) *[]byte {
	name := key[1 : len(key)-1]
	if !plain {
		var s string
		if json.Unmarshal(key, &s) != nil {
			return nil
		}
		name = []byte(s)
	}
	if len(name) == 0 || len(name) > len("supportedConnectionTypes")*3 {
		return nil
	}
	for _, c := range [...]struct {
		name string
		p    *[]byte
	}{
		{"channel", &f.channel}, {"clientId", &f.clientID}, {"id", &f.id}, {"data", &f.data},
		{"ext", &f.ext}, {"connectionType", &f.connectionType}, {"advice", &f.advice},
		{"subscription", &f.subscription}, {"version", &f.version},
		{"supportedConnectionTypes", &f.connectionTypes},
	} {
		if foldEqual(name, c.name, plain) {
			return c.p
		}
	}
	return nil
}

// foldEqual reports whether name equals want under Unicode simple case folding (as
// bytes.EqualFold); want is ASCII, and so is name when plain.
func foldEqual(name []byte, want string, plain bool) bool {
	if !plain {
		return strings.EqualFold(string(name), want)
	}
	if len(name) != len(want) {
		return false
	}
	for i := range len(name) {
		a, b := name[i], want[i]
		if a != b && (a|0x20 != b|0x20 || b|0x20 < 'a' || b|0x20 > 'z') {
			return false
		}
	}
	return true
}

func (f *fields) message(invalidText bool) Message {
	m := Message{
		InvalidText:    invalidText,
		Channel:        str(f.channel),
		ClientID:       str(f.clientID),
		ConnectionType: str(f.connectionType),
		Version:        str(f.version),
		Data:           f.data,
		HasData:        f.data != nil,
		Subscription:   f.subscription,
		AdviceTimeout:  -1,
	}
	if f.id != nil && string(f.id) != "null" {
		m.ID = f.id
	}
	switch {
	case len(f.connectionTypes) > 0 && f.connectionTypes[0] == '[':
		var types []any
		_ = json.Unmarshal(f.connectionTypes, &types)
		for _, t := range types {
			if s, ok := t.(string); ok {
				m.ConnectionTypes = append(m.ConnectionTypes, s)
			}
		}
	case f.connectionTypes != nil:
		// Not a list (Faye refuses a bare string as an unsupported type).
		m.ConnectionTypesNotList = true
		m.ConnectionTypes = []string{str(f.connectionTypes)}
	}
	if len(f.advice) > 0 && f.advice[0] == '{' {
		m.AdviceTimeout = adviceTimeout(f.advice)
	}
	if len(f.ext) > 0 && f.ext[0] == '{' {
		var token []byte
		eachMember(f.ext, func(key []byte, plain bool, val []byte) {
			if keyIs(key, plain, "token") {
				token = val
			}
		})
		m.Token = view(token)
	}
	return m
}

// view is str for a string of the decoded body that needs no unescaping: the bytes between
// its quotes, shared rather than copied. The body is never changed after decoding (see
// DecodeOwnedBatch), so the string stays what it was.
func view(raw []byte) string {
	n := len(raw)
	if n < 2 || raw[0] != '"' || raw[n-1] != '"' {
		return str(raw)
	}
	i := 1
	for ; n-1-i >= 8 && plainWord(binary.LittleEndian.Uint64(raw[i:])); i += 8 {
	}
	for ; i < n-1 && ordinary(raw[i]); i++ {
	}
	if i < n-1 {
		return str(raw)
	}
	return unsafe.String(&raw[1], n-2)
}

// adviceTimeout reads advice.timeout as encoding/json reads it into a *float64: any
// wrong-typed or out-of-range timeout member spoils the whole advice.
func adviceTimeout(advice []byte) int64 {
	var timeout []byte
	bad := false
	eachMember(advice, func(key []byte, plain bool, val []byte) {
		if !keyIs(key, plain, "timeout") {
			return
		}
		switch c := val[0]; {
		case c == 'n':
			timeout = nil
		case c == '-' || (c >= '0' && c <= '9'):
			timeout = val
		default:
			bad = true
		}
		if timeout != nil {
			if _, err := strconv.ParseFloat(string(timeout), 64); err != nil {
				bad = true
			}
		}
	})
	if bad || timeout == nil {
		return -1
	}
	t, _ := strconv.ParseFloat(string(timeout), 64)
	if t < 0 {
		return -1
	}
	return int64(t)
}

// eachMember walks an object that DecodeBatch already validated.
func eachMember(obj []byte, fn func(key []byte, plain bool, val []byte)) {
	d := decoder{data: obj}
	_ = d.members(1, fn)
}

func keyIs(key []byte, plain bool, want string) bool {
	name := key[1 : len(key)-1]
	if !plain {
		var s string
		if json.Unmarshal(key, &s) != nil {
			return false
		}
		name = []byte(s)
	}
	return foldEqual(name, want, plain)
}

// ValidJSONText reports whether raw is one JSON value whose strings are all valid text, as
// DecodeBatch requires of a message.
func ValidJSONText(raw []byte) bool {
	_, err := scanJSONText(raw)
	return err == nil
}

// ErrNotText is returned by AppendJSONText for JSON with a string that is not valid text.
var ErrNotText = errors.New("JSON with a string that is not valid UTF-8 text")

// AppendJSONText appends raw, one JSON value whose strings are all valid text, to dst without
// insignificant whitespace (as json.Compact would). It reads raw once: the validation that
// json.Valid, ValidJSONText and json.Compact did in three passes. Errors: ErrMalformed when
// raw is not JSON, ErrNotText when a string is not text.
func AppendJSONText(dst, raw []byte) ([]byte, error) {
	spaced, err := scanJSONText(raw)
	switch {
	case err != nil:
		return dst, err
	case !spaced:
		return append(dst, raw...), nil
	}
	b := bytes.NewBuffer(dst)
	if err := json.Compact(b, raw); err != nil {
		return dst, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return b.Bytes(), nil
}

// scanJSONText checks that raw is one JSON value whose strings are all valid text, and tells
// whether it holds insignificant whitespace.
func scanJSONText(raw []byte) (spaced bool, err error) {
	d := decoder{data: raw}
	d.ws()
	if d.i == len(d.data) || d.value(1) != nil {
		return false, ErrMalformed
	}
	d.ws()
	switch {
	case d.i != len(d.data):
		return false, ErrMalformed
	case d.bad:
		return false, ErrNotText
	}
	return d.spaced, nil
}
