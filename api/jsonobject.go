package api

import (
	"bytes"
	"encoding/json"
)

// splitObject splits a JSON text into the members of its top-level object: what
// json.Unmarshal into a map of json.RawMessage gives, in one pass and without reflection
// (that decoding was about a tenth of a REST post's CPU; docs/profiles/README.md, round five).
// ok is false when body is not valid JSON or not an object. Keys are unescaped as
// encoding/json does; each value is its exact bytes, in one copy of body shared by all.
func splitObject(body []byte) (p Params, ok bool) {
	if !json.Valid(body) {
		return nil, false
	}
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, false
	}
	body = bytes.Clone(body) // the caller's buffer is reused after the request
	p = Params{}
	i = skipSpace(body, i+1)
	if body[i] == '}' {
		return p, true
	}
	for {
		end := skipString(body, i)
		key := body[i:end]
		var k string
		if bytes.IndexByte(key, '\\') < 0 {
			k = string(key[1 : len(key)-1])
		} else if json.Unmarshal(key, &k) != nil {
			return nil, false
		}
		i = skipSpace(body, skipSpace(body, end)+1) // past the colon
		end = skipValue(body, i)
		p[k] = body[i:end:end]
		i = skipSpace(body, end)
		if body[i] == '}' {
			return p, true
		}
		i = skipSpace(body, i+1) // past the comma
	}
}

// The skip functions below trust that b is valid JSON (json.Valid said so) and return the
// index just past what they skip.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString skips the string that starts with the quote at b[i].
func skipString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// skipValue skips the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default: // number, true, false, null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && skipSpace(b, i) == i {
			i++
		}
		return i
	}
}
