package duty

import (
	"maps"
	"testing"
)

func TestCountByOrg(t *testing.T) {
	r := NewRegistry()
	if got := r.CountByOrg(); len(got) != 0 {
		t.Fatalf("empty registry: %v", got)
	}
	r.Join("O", "m1", "mqtt:a")
	r.Join("O", "m1", "faye:b") // the same manager twice counts once
	r.Join("O", "m2", "mqtt:c")
	r.Join("P", "m1", "mqtt:d")
	if got, want := r.CountByOrg(), map[string]int{"O": 2, "P": 1}; !maps.Equal(got, want) {
		t.Fatalf("CountByOrg = %v, want %v", got, want)
	}
	r.Gone("mqtt:d")
	if got, want := r.CountByOrg(), map[string]int{"O": 2}; !maps.Equal(got, want) {
		t.Fatalf("after P's manager left: %v, want %v", got, want)
	}
}
