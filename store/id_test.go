package store

import (
	"regexp"
	"sort"
	"testing"
	"time"
)

func TestNewIDSortsByCreationTime(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{20}$`)
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	var ids []string
	for i := 0; i < 2000; i++ {
		// Several ids per millisecond, and steps across byte boundaries of the timestamp.
		id := newIDAt(base.Add(time.Duration(i/4) * 255 * time.Millisecond))
		if !valid.MatchString(id) {
			t.Fatalf("id %q is not 20 characters of [A-Za-z0-9_-]", id)
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	for i := 4; i < len(ids); i++ {
		if ids[i-4] >= ids[i] {
			t.Fatalf("id %q of a later millisecond sorts before %q", ids[i], ids[i-4])
		}
	}
	sorted := sort.StringsAreSorted([]string{newIDAt(time.UnixMilli(0)), newIDAt(time.UnixMilli(1<<48 - 1))})
	if !sorted {
		t.Fatal("the first and the last representable milliseconds are out of order")
	}
}

func TestIDEncodingIsInASCIIOrder(t *testing.T) {
	const alphabet = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
	for i := 1; i < len(alphabet); i++ {
		if alphabet[i-1] >= alphabet[i] {
			t.Fatalf("%q before %q", alphabet[i-1], alphabet[i])
		}
	}
	// Sextets 0, 1, 2, 3 and 60, 61, 62, 63: the alphabet's first and last characters.
	if got := idEncoding.EncodeToString([]byte{0x00, 0x10, 0x83, 0xf3, 0xdf, 0xbf}); got != alphabet[:4]+alphabet[60:] {
		t.Fatalf("idEncoding encodes sextets 0–3, 60–63 as %q, want %q", got, alphabet[:4]+alphabet[60:])
	}
}
