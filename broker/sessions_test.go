package broker

import "testing"

func TestPacketIDFromKey(t *testing.T) {
	cases := map[string]uint16{
		"IFM_integration-1:1":      1,
		"IFM_client:with:colons:7": 7,
		"IFM_c:65535":              65535,
		"IFM_c:65536":              0,
		"IFM_c:x":                  0,
		"IFM_c":                    0,
		"":                         0,
	}
	for key, want := range cases {
		if got := packetIDFromKey(key); got != want {
			t.Errorf("packetIDFromKey(%q) = %d, want %d", key, got, want)
		}
	}
}
