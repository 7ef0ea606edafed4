package cluster

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

func TestTopicSubject(t *testing.T) {
	for _, tc := range []struct{ topic, subject string }{
		{"orgs/shop1/service/v42", "chat.orgs.shop1.service.v42"},
		{"orgs/shop1/conversations/C-1_x/receipts", "chat.orgs.shop1.conversations.C-1_x.receipts"},
		{"a.b/c d", "chat.a%2Eb.c%20d"},
		{"a//b/", "chat.a.%.b.%"},
		{"*/>/%", "chat.%2A.%3E.%25"},
		{"é", "chat.%C3%A9"},
	} {
		if got := TopicSubject("chat", tc.topic); got != tc.subject {
			t.Errorf("TopicSubject(%q) = %q, want %q", tc.topic, got, tc.subject)
		}
		if back, err := SubjectTopic("chat", tc.subject); err != nil || back != tc.topic {
			t.Errorf("SubjectTopic(%q) = %q, %v; want %q", tc.subject, back, err, tc.topic)
		}
	}
}

func TestSubjectTopicRefuses(t *testing.T) {
	for _, s := range []string{"other.orgs.x", "chat", "chat.", "chat.a..b", "chat.%2", "chat.%zz", "chat.%41", "chat.a*", "chat.>", "chat.a%"} {
		if got, err := SubjectTopic("chat", s); err == nil {
			t.Errorf("SubjectTopic(%q) = %q, want an error", s, got)
		}
	}
}

func TestFilterSubjects(t *testing.T) {
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
		if got := FilterSubjects("p.q", tc.filter); !slices.Equal(got, tc.want) {
			t.Errorf("FilterSubjects(%q) = %q, want %q", tc.filter, got, tc.want)
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

func FuzzTopicSubject(f *testing.F) {
	for _, s := range []string{"orgs/o/service/v", "a//b", "", "/", "x.y z", "%41", "é/\x00/\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		subj := TopicSubject("chat", topic)
		if !validSubject(subj) || strings.ContainsAny(subj, "*> \t\r\n") {
			t.Fatalf("TopicSubject(%q) = %q: not a valid NATS subject", topic, subj)
		}
		back, err := SubjectTopic("chat", subj)
		if err != nil || back != topic {
			t.Fatalf("round trip of %q via %q = %q, %v", topic, subj, back, err)
		}
		// Any subject either maps back to the topic that produces it, or is refused.
		if tp, err := SubjectTopic("chat", "chat."+topic); err == nil && TopicSubject("chat", tp) != "chat."+topic {
			t.Fatalf("SubjectTopic accepted %q but it is not the spelling of %q", "chat."+topic, tp)
		}
	})
}
