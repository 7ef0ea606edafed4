// Package subject maps MQTT topics and filters to NATS subjects and back, for the cluster's
// forwarding between nodes. Pure: no I/O.
//
// An MQTT topic becomes a NATS subject under the cluster prefix, one MQTT level
// per NATS token:
//
//	orgs/O/service/V            ↔ chat.orgs.O.service.V
//	orgs/O/service/+  (filter)  → chat.orgs.O.service.*
//	orgs/O/conversations/#      → chat.orgs.O.conversations.> (and chat.orgs.O.conversations)
//
// NATS tokens may not be empty nor hold '.', '*', '>' or whitespace, while an MQTT level may
// hold nearly anything. A level made only of [A-Za-z0-9_-!~()$@:] (every chat id and Faye
// segment) is kept as is; any other byte is written %XX, and an empty level is "%" alone, which
// no escaped level can be. So the mapping is one-to-one and ids stay readable in NATS tools.
package subject

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSubject: a subject that no topic maps to.
var ErrSubject = errors.New("not a topic subject")

func keep(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("_-!~()$@:", c) >= 0
}

const hexDigits = "0123456789ABCDEF"

func escapeLevel(b *strings.Builder, level string) {
	if level == "" {
		b.WriteByte('%')
		return
	}
	for i := 0; i < len(level); i++ {
		c := level[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unescapeLevel(b *strings.Builder, tok string) error {
	if tok == "%" {
		return nil
	}
	if tok == "" {
		return fmt.Errorf("%w: empty token", ErrSubject)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		if c != '%' || i+2 >= len(tok) {
			return fmt.Errorf("%w: bad byte %q in token %q", ErrSubject, c, tok)
		}
		hi, ok1 := unhex(tok[i+1])
		lo, ok2 := unhex(tok[i+2])
		v := hi<<4 | lo
		if !ok1 || !ok2 || keep(v) { // a kept byte is never escaped: one spelling per topic
			return fmt.Errorf("%w: bad escape in token %q", ErrSubject, tok)
		}
		b.WriteByte(v)
		i += 2
	}
	return nil
}

// FromTopic maps a concrete MQTT topic name to its NATS subject under prefix.
func FromTopic(prefix, topic string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(topic) + 8)
	b.WriteString(prefix)
	for _, level := range strings.Split(topic, "/") {
		b.WriteByte('.')
		escapeLevel(&b, level)
	}
	return b.String()
}

// ToTopic maps a NATS subject back to the MQTT topic name; it fails for subjects that
// FromTopic cannot produce.
func ToTopic(prefix, subject string) (string, error) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", fmt.Errorf("%w: %q lacks the prefix %q", ErrSubject, subject, prefix)
	}
	var b strings.Builder
	b.Grow(len(rest))
	for i, tok := range strings.Split(rest, ".") {
		if i > 0 {
			b.WriteByte('/')
		}
		if err := unescapeLevel(&b, tok); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// ForFilter maps an MQTT subscription filter to the NATS subjects that together receive
// every topic it matches: '+' is '*', a trailing '#' is '>' plus the parent level itself (MQTT's
// "a/#" matches "a"). A filter starting with '$' yields nothing: those topics are never
// forwarded. A shared subscription ($share/group/filter) stands for its filter.
func ForFilter(prefix, filter string) []string {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, f, found := strings.Cut(rest, "/")
		if !found {
			return nil
		}
		filter = f
	}
	if filter == "" || filter[0] == '$' {
		return nil
	}
	levels := strings.Split(filter, "/")
	var b strings.Builder
	b.WriteString(prefix)
	for i, level := range levels {
		if level == "#" {
			if i != len(levels)-1 {
				return nil // not a valid filter
			}
			parent := b.String()
			if i == 0 {
				return []string{parent + ".>"}
			}
			return []string{parent, parent + ".>"}
		}
		b.WriteByte('.')
		if level == "+" {
			b.WriteByte('*')
			continue
		}
		escapeLevel(&b, level)
	}
	return []string{b.String()}
}
