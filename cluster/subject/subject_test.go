package subject

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestFromTopic(t *testing.T) {
	for _, tc := range []struct{ topic, subject string }{
		{"orgs/shop1/service/v42", "chat.orgs.shop1.service.v42"},
		{"orgs/shop1/conversations/C-1_x/receipts", "chat.orgs.shop1.conversations.C-1_x.receipts"},
		{"a.b/c d", "chat.a%2Eb.c%20d"},
		{"a//b/", "chat.a.%.b.%"},
		{"*/>/%", "chat.%2A.%3E.%25"},
		{"é", "chat.%C3%A9"},
	} {
		if got := FromTopic("chat", tc.topic); got != tc.subject {
			t.Errorf("FromTopic(%q) = %q, want %q", tc.topic, got, tc.subject)
		}
		if back, err := ToTopic("chat", tc.subject); err != nil || back != tc.topic {
			t.Errorf("ToTopic(%q) = %q, %v; want %q", tc.subject, back, err, tc.topic)
		}
	}
}

func TestToTopicRefuses(t *testing.T) {
	for _, s := range []string{"other.orgs.x", "chat", "chat.", "chat.a..b", "chat.%2", "chat.%zz", "chat.%41", "chat.a*", "chat.>", "chat.a%"} {
		if got, err := ToTopic("chat", s); err == nil {
			t.Errorf("ToTopic(%q) = %q, want an error", s, got)
		}
	}
}

func TestForFilter(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"orgs/o/service/+", []string{"p.q.orgs.o.service.*"}},
		{"orgs/o/service/v", []string{"p.q.orgs.o.service.v"}},
		{"orgs/o/#", []string{"p.q.orgs.o", "p.q.orgs.o.>"}},
		{"#", []string{"p.q.>"}},
		{"$share/g/orgs/o/+/x", []string{"p.q.orgs.o.*.x"}},
		{"$SYS/#", nil},
		{"a/#/b", nil},
		{"$share/g", nil},
		{"", nil},
	} {
		if got := ForFilter("p.q", tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("ForFilter(%q) = %q, want %q", tc.filter, got, tc.want)
		}
	}
}

// validSubject: what a NATS server accepts as a publish subject.
func validSubject(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsFunc(tok, unicode.IsSpace) {
			return false
		}
	}
	return true
}

func FuzzMapping(f *testing.F) {
	for _, s := range []string{"orgs/o/service/v", "a//b", "", "/", "x.y z", "%41", "é/\x00/\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		subj := FromTopic("chat", topic)
		if !validSubject(subj) || strings.ContainsAny(subj, "*> \t\r\n") {
			t.Fatalf("FromTopic(%q) = %q: not a valid NATS subject", topic, subj)
		}
		back, err := ToTopic("chat", subj)
		if err != nil || back != topic {
			t.Fatalf("round trip of %q via %q = %q, %v", topic, subj, back, err)
		}
		// Any subject either maps back to the topic that produces it, or is refused.
		if tp, err := ToTopic("chat", "chat."+topic); err == nil && FromTopic("chat", tp) != "chat."+topic {
			t.Fatalf("ToTopic accepted %q but it is not the spelling of %q", "chat."+topic, tp)
		}
	})
}
