package duty

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	r.Join("O", "m1", "mqtt:a")
	r.Join("O", "m1", "faye:b")
	r.Join("O", "m2", "mqtt:c")
	r.Join("P", "m1", "mqtt:d")
	r.Join("O", "m1", "mqtt:a") // again: harmless
	check := func(org string, want ...string) {
		t.Helper()
		if got := r.OnDuty(org); !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("OnDuty(%s) = %v, want %v", org, got, want)
		}
	}
	check("O", "m1", "m2")
	check("P", "m1")
	r.Leave("O", "m1", "mqtt:a")
	check("O", "m1", "m2") // still on duty through faye:b
	r.Gone("faye:b")
	check("O", "m2")
	r.Leave("O", "m9", "mqtt:zz") // unknown: harmless
	r.Gone("mqtt:c")
	check("O")
	check("P", "m1")
	if len(r.byOrg) != 1 || len(r.byHolder) != 1 {
		t.Errorf("registry keeps empty entries: %v %v", r.byOrg, r.byHolder)
	}
}

func TestConcurrent(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := fmt.Sprint("h", i)
			for j := 0; j < 200; j++ {
				r.Join("O", fmt.Sprint("m", j%5), h)
				_ = r.OnDuty("O")
				if j%3 == 0 {
					r.Gone(h)
				}
			}
			r.Gone(h)
		}(i)
	}
	wg.Wait()
	if got := r.OnDuty("O"); len(got) != 0 {
		t.Errorf("after everyone left: %v", got)
	}
}

func TestNotifyAndSnapshot(t *testing.T) {
	r := NewRegistry()
	var changes []string
	r.Notify(func(org string) { changes = append(changes, org) })
	r.Join("O", "m1", "a")
	r.Join("O", "m1", "b") // already on duty: no change
	r.Join("P", "m2", "a")
	r.Leave("O", "m1", "a") // still held by b: no change
	if want := []string{"O", "P"}; !slices.Equal(changes, want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	if snap := r.Snapshot(); !slices.Equal(snap["O"], []string{"m1"}) || !slices.Equal(snap["P"], []string{"m2"}) || len(snap) != 2 {
		t.Fatalf("snapshot %v", snap)
	}
	changes = nil
	r.Gone("a")
	r.Gone("b")
	slices.Sort(changes)
	if want := []string{"O", "P"}; !slices.Equal(changes, want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	if len(r.Snapshot()) != 0 {
		t.Fatalf("snapshot %v, want empty", r.Snapshot())
	}
}
