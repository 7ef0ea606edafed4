// Package channel knows the names of things clients subscribe and publish to: Faye channels
// (`/service/V`) and the MQTT topics they map to (`orgs/O/service/V`).
//
// The broker is multi-tenant: every organisation owns the topic subtree `orgs/<org>/`, and a Faye
// channel is always interpreted inside the subtree of the client's organisation. That is what
// makes it impossible for one organisation to receive another's traffic, whatever channel name a
// client sends. The package does no I/O; it only validates, maps and classifies names.
package channel

import (
	"errors"
	"fmt"
	"strings"
)

// TopicRoot is the first level of every tenant topic.
const TopicRoot = "orgs"

// MaxLen bounds channel names and topics; longer input is rejected before any other work.
const MaxLen = 1024

// Errors returned by the parsers; wrapped with the offending input.
var (
	ErrInvalidChannel = errors.New("invalid channel name")
	ErrInvalidTopic   = errors.New("invalid topic")
	ErrInvalidID      = errors.New("invalid id")
)

// ValidID reports whether s is a valid organisation, visitor, manager, conversation or message
// id: 1 to 64 characters of [A-Za-z0-9_-]. Such ids are valid both as a Faye segment and as an
// MQTT topic level, so they can be put into channel names without escaping.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// segmentByte tells the bytes of a literal Faye channel segment: [A-Za-z0-9-_!~()$@].
var segmentByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_!~()$@", byte(c)) >= 0
	}
	return t
}()

// validSegment reports whether s is a literal Faye channel segment: [A-Za-z0-9-_!~()$@]+.
func validSegment(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !segmentByte[s[i]] {
			return false
		}
	}
	return true
}

// Valid reports whether name is a Faye channel name or pattern as Faye 1.4 accepts it:
// literal segments, optionally ending in `/*` (one segment) or `/**` (any depth).
func Valid(name string) bool { return checkName(name) == nil }

// IsPattern reports whether a valid channel name ends in a wildcard.
func IsPattern(name string) bool {
	return strings.HasSuffix(name, "/*") || strings.HasSuffix(name, "/**")
}

// IsMeta reports whether name is a Bayeux protocol channel (`/meta/...`), which is never routed.
func IsMeta(name string) bool { return name == "/meta" || strings.HasPrefix(name, "/meta/") }

// checkName validates a channel name against the Faye grammar in one pass over its bytes: a
// publish passes here several times (the Faye door, the ACL, ToTopic), and cutting the name
// into segments was a tenth of a Faye publish's CPU.
func checkName(name string) error {
	if len(name) > MaxLen || len(name) < 2 || name[0] != '/' {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, clip(name))
	}
	seg, stars := 0, 0 // bytes and '*' of the segment being read
	for i := 1; i < len(name); i++ {
		switch c := name[i]; {
		case c == '/':
			if seg == 0 || stars > 0 {
				return fmt.Errorf("%w: %q", ErrInvalidChannel, clip(name))
			}
			seg = 0
		case c == '*':
			seg, stars = seg+1, stars+1
		case segmentByte[c]:
			seg++
		default:
			return fmt.Errorf("%w: %q", ErrInvalidChannel, clip(name))
		}
	}
	// Only the last segment may be a wildcard, and only a whole `*` or `**`.
	if seg == 0 || stars > 0 && (stars != seg || stars > 2) {
		return fmt.Errorf("%w: %q", ErrInvalidChannel, clip(name))
	}
	return nil
}

// ToTopic maps the Faye channel name (or pattern) of organisation org to its MQTT topic (or
// filter): `/a/b` → `orgs/<org>/a/b`, a final `*` → `+`, a final `**` → `#`.
// Meta channels and names outside the Faye grammar are rejected.
func ToTopic(org, name string) (string, error) {
	if !ValidID(org) {
		return "", fmt.Errorf("%w: organisation %q", ErrInvalidID, clip(org))
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	if IsMeta(name) {
		return "", fmt.Errorf("%w: meta channel %q has no topic", ErrInvalidChannel, name)
	}
	switch {
	case strings.HasSuffix(name, "/**"):
		return TopicRoot + "/" + org + name[:len(name)-2] + "#", nil
	case strings.HasSuffix(name, "/*"):
		return TopicRoot + "/" + org + name[:len(name)-1] + "+", nil
	}
	return TopicRoot + "/" + org + name, nil
}

// FromTopic maps an MQTT topic (or filter) back to its organisation and Faye channel name.
// It is the exact inverse of ToTopic: a topic that has no Faye equivalent (outside `orgs/`, a `+`
// anywhere but last, a segment outside the Faye grammar, the meta channels) is rejected rather
// than altered. The name of a concrete topic is the topic's own tail, not a copy.
func FromTopic(topic string) (org, name string, err error) {
	if len(topic) > MaxLen {
		return "", "", fmt.Errorf("%w: %q", ErrInvalidTopic, clip(topic))
	}
	rest, ok := strings.CutPrefix(topic, TopicRoot+"/")
	if !ok {
		return "", "", fmt.Errorf("%w: %q is outside %s/", ErrInvalidTopic, clip(topic), TopicRoot)
	}
	org, path, ok := strings.Cut(rest, "/")
	if !ok || !ValidID(org) || path == "" {
		return "", "", fmt.Errorf("%w: %q has no organisation and channel", ErrInvalidTopic, clip(topic))
	}
	name = topic[len(topic)-len(path)-1:] // "/" + path
	for segs, more := path, true; more; {
		var s string
		s, segs, more = strings.Cut(segs, "/")
		switch {
		case !more && s == "+":
			name = name[:len(name)-1] + "*"
		case !more && s == "#":
			name = name[:len(name)-1] + "**"
		case !validSegment(s):
			return "", "", fmt.Errorf("%w: %q has no Faye channel", ErrInvalidTopic, clip(topic))
		}
	}
	if IsMeta(name) {
		return "", "", fmt.Errorf("%w: %q maps to a meta channel", ErrInvalidTopic, clip(topic))
	}
	return org, name, nil
}

// clip keeps error messages bounded when they quote hostile input.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
