package origin

import "testing"

func TestPolicy(t *testing.T) {
	p := NewPolicy([]string{"https://Shop.example/", " https://b.example "})
	cases := []struct {
		origin, host string
		ok           bool
	}{
		{"", "chat.example", true},
		{"https://shop.example", "chat.example", true},
		{"https://b.example", "chat.example", true},
		{"https://chat.example", "chat.example", true},
		{"http://chat.example:8000", "chat.example:8000", true},
		{"https://evil.example", "chat.example", false},
		{"https://shop.example.evil.example", "chat.example", false},
		{"null", "chat.example", false},
		{"javascript://chat.example", "chat.example", false},
		{"%%%", "chat.example", false},
	}
	for _, tc := range cases {
		if got := p.Allowed(tc.origin, tc.host); got != tc.ok {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tc.origin, tc.host, got, tc.ok)
		}
	}
	none := NewPolicy(nil)
	if none.Allowed("https://shop.example", "chat.example") || !none.Allowed("https://chat.example", "chat.example") {
		t.Error("empty policy must allow same-origin only")
	}
	if !NewPolicy([]string{"*"}).Allowed("null", "chat.example") {
		t.Error(`"*" must allow any origin`)
	}
	if CrossOrigin("", "h") || CrossOrigin("https://h", "h") || !CrossOrigin("https://x", "h") {
		t.Error("CrossOrigin is wrong")
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry(NewPolicy([]string{"https://central.example"}))
	r.SetOrg("A", []string{"https://shop-a.example/", "https://both.example"})
	r.SetOrg("B", []string{"https://shop-b.example", "https://both.example"})
	cases := []struct {
		org, origin string
		any, forOrg bool
	}{
		{"A", "https://shop-a.example", true, true},
		{"B", "https://shop-a.example", true, false},
		{"B", "https://central.example", true, true},
		{"A", "https://both.example", true, true},
		{"A", "https://evil.example", false, false},
		{"C", "https://shop-a.example", true, false},
	}
	for _, tc := range cases {
		if got := r.Allowed(tc.origin, "chat.example"); got != tc.any {
			t.Errorf("Allowed(%s) = %v", tc.origin, got)
		}
		if got := r.AllowedFor(tc.org, tc.origin, "chat.example"); got != tc.forOrg {
			t.Errorf("AllowedFor(%s, %s) = %v", tc.org, tc.origin, got)
		}
	}
	r.SetOrg("A", nil)
	if r.Allowed("https://shop-a.example", "chat.example") || !r.Allowed("https://both.example", "chat.example") {
		t.Error("replacing an organisation's origins must drop only its own")
	}
	for o, ok := range map[string]bool{"https://a.example": true, "http://a.example:8080": true, "https://a.example/": true,
		"https://a.example/path": false, "ftp://a.example": false, "a.example": false, "https://u@a.example": false, "*": false} {
		if Valid(o) != ok {
			t.Errorf("Valid(%q) = %v", o, !ok)
		}
	}
}
