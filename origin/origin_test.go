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
