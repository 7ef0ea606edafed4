package channel

import (
	"errors"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"/service/abc", true},
		{"/service/*", true},
		{"/**", true},
		{"/*", true},
		{"/a/b/c", true},
		{"/a-_!~()$@9", true},
		{"/meta/handshake", true},
		{"", false},
		{"/", false},
		{"service", false},
		{"/service/", false},
		{"//x", false},
		{"/a/*/b", false},
		{"/a/***", false},
		{"/a/**/b", false},
		{"/a b", false},
		{"/a+b", false},
		{"/a#", false},
		{"/a*", false},
		{"/*a", false},
		{"/*/", false},
		{"/a/", false},
		{"/**/", false},
		{"/a/b*", false},
		{"/caf\u00e9", false},
		{"/" + strings.Repeat("a", MaxLen), false},
	}
	for _, tc := range cases {
		if got := Valid(tc.name); got != tc.ok {
			t.Errorf("Valid(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestToTopic(t *testing.T) {
	cases := []struct {
		org, name, topic string
		err              error
	}{
		{"O", "/service/V", "orgs/O/service/V", nil},
		{"O", "/service/*", "orgs/O/service/+", nil},
		{"O", "/**", "orgs/O/#", nil},
		{"O", "/*", "orgs/O/+", nil},
		{"org-1", "/conversations/c1/typing", "orgs/org-1/conversations/c1/typing", nil},
		{"O", "/a/$x@y", "orgs/O/a/$x@y", nil},
		{"O", "/meta/connect", "", ErrInvalidChannel},
		{"O", "/a/*/b", "", ErrInvalidChannel},
		{"O", "/a b", "", ErrInvalidChannel},
		{"", "/a", "", ErrInvalidID},
		{"O/P", "/a", "", ErrInvalidID},
		{"O+", "/a", "", ErrInvalidID},
	}
	for _, tc := range cases {
		got, err := ToTopic(tc.org, tc.name)
		if !errors.Is(err, tc.err) || got != tc.topic {
			t.Errorf("ToTopic(%q, %q) = %q, %v; want %q, %v", tc.org, tc.name, got, err, tc.topic, tc.err)
		}
	}
}

func TestFromTopic(t *testing.T) {
	cases := []struct {
		topic, org, name string
		ok               bool
	}{
		{"orgs/O/service/V", "O", "/service/V", true},
		{"orgs/O/service/+", "O", "/service/*", true},
		{"orgs/O/#", "O", "/**", true},
		{"orgs/O/+", "O", "/*", true},
		{"orgs/O", "", "", false},
		{"orgs/O/", "", "", false},
		{"orgs//service/V", "", "", false},
		{"orgs/+/service/V", "", "", false},
		{"orgs/#", "", "", false},
		{"#", "", "", false},
		{"$SYS/broker/clients", "", "", false},
		{"other/O/service/V", "", "", false},
		{"orgs/O/+/V", "", "", false},
		{"orgs/O/service/+/x", "", "", false},
		{"orgs/O/a/#/b", "", "", false},
		{"orgs/O/a//b", "", "", false},
		{"orgs/O/a b", "", "", false},
		{"orgs/O/meta/connect", "", "", false},
		{"orgs/O/a/*", "", "", false},
	}
	for _, tc := range cases {
		org, name, err := FromTopic(tc.topic)
		if (err == nil) != tc.ok || org != tc.org || name != tc.name {
			t.Errorf("FromTopic(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.topic, org, name, err, tc.org, tc.name, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidTopic) {
			t.Errorf("FromTopic(%q) error %v does not wrap ErrInvalidTopic", tc.topic, err)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		want Channel
	}{
		{"/service/*", Channel{Name: "/service/*", Kind: ServiceAll}},
		{"/service/v1", Channel{Name: "/service/v1", Kind: Service, ID: "v1"}},
		{"/service/**", Channel{Name: "/service/**", Kind: Other}},
		{"/service/v1/x", Channel{Name: "/service/v1/x", Kind: Other}},
		{"/service/v!1", Channel{Name: "/service/v!1", Kind: Other}},
		{"/notifications/v1", Channel{Name: "/notifications/v1", Kind: Notifications, ID: "v1"}},
		{"/conversations/c1", Channel{Name: "/conversations/c1", Kind: Conversation, ID: "c1"}},
		{"/conversations/c1/typing", Channel{Name: "/conversations/c1/typing", Kind: ConversationSub, ID: "c1", Sub: "typing"}},
		{"/conversations/*", Channel{Name: "/conversations/*", Kind: ConversationsAll}},
		{"/conversations/**", Channel{Name: "/conversations/**", Kind: ConversationsAll}},
		{"/conversations/c1/*", Channel{Name: "/conversations/c1/*", Kind: Other}},
		{"/**", Channel{Name: "/**", Kind: Other}},
		{"/replies/manager/m1", Channel{Name: "/replies/manager/m1", Kind: Replies, ID: "m1", Sub: "manager"}},
		{"/replies/root/m1", Channel{Name: "/replies/root/m1", Kind: Other}},
		{"/replies/manager/m1/x", Channel{Name: "/replies/manager/m1/x", Kind: Other}},
		{"/bogus name", Channel{Name: "/bogus name", Kind: Other}},
	}
	for _, tc := range cases {
		if got := Classify(tc.name); got != tc.want {
			t.Errorf("Classify(%q) = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"a", "A-z_09", strings.Repeat("x", 64)} {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false", s)
		}
	}
	for _, s := range []string{"", strings.Repeat("x", 65), "a/b", "a+b", "a#", "a.b", "a b", "é"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

// FuzzTopicMapping proves that the mapping round-trips in both directions and that whatever
// it accepts stays inside the organisation's subtree.
// validReference is the grammar as Faye states it, segment by segment: the one-pass checkName
// must agree with it on every input.
func validReference(name string) bool {
	if len(name) > MaxLen || !strings.HasPrefix(name, "/") {
		return false
	}
	segs := strings.Split(name[1:], "/")
	for i, s := range segs {
		if i == len(segs)-1 && (s == "*" || s == "**") {
			return true
		}
		if s == "" || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!~()$@") != "" {
			return false
		}
	}
	return true
}

func FuzzValidReference(f *testing.F) {
	for _, s := range []string{"/a/b", "/*", "/a/**", "/a*/b", "//", "/a/***", "/caf\u00e9", "/(x)$@"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := Valid(name), validReference(name); got != want {
			t.Fatalf("Valid(%q) = %v, the grammar says %v", name, got, want)
		}
	})
}

func FuzzTopicMapping(f *testing.F) {
	for _, s := range []string{"orgs/O/service/+", "orgs/O/#", "/service/*", "/**", "orgs/O/a/+/b", "$SYS/#", "/meta/x", "orgs/O/a\x00"} {
		f.Add("O", s)
	}
	f.Fuzz(func(t *testing.T, org, s string) {
		if topic, err := ToTopic(org, s); err == nil {
			if !strings.HasPrefix(topic, TopicRoot+"/"+org+"/") {
				t.Fatalf("ToTopic(%q, %q) = %q escapes the organisation", org, s, topic)
			}
			o, n, err := FromTopic(topic)
			if err != nil || o != org || n != s {
				t.Fatalf("FromTopic(ToTopic(%q, %q) = %q) = %q, %q, %v", org, s, topic, o, n, err)
			}
		}
		if o, n, err := FromTopic(s); err == nil {
			back, err := ToTopic(o, n)
			if err != nil || back != s {
				t.Fatalf("ToTopic(FromTopic(%q) = %q, %q) = %q, %v", s, o, n, back, err)
			}
		}
	})
}

func TestValidNodeName(t *testing.T) {
	for name, want := range map[string]bool{
		"node-1": true, "a": true, strings.Repeat("n", 32): true,
		"": false, strings.Repeat("n", 33): false, "Node-1": false, "node_1": false, "node.1": false,
	} {
		if got := ValidNodeName(name); got != want {
			t.Errorf("ValidNodeName(%q) = %v, want %v", name, got, want)
		}
	}
}
