package server

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestCleanupStackUnwindsNewestFirst(t *testing.T) {
	var order []string
	var c cleanupStack
	boom := errors.New("boom")
	c.push(func(context.Context) error { order = append(order, "store"); return nil })
	c.push(func(context.Context) error { order = append(order, "node"); return boom })
	c.push(func(context.Context) error { order = append(order, "listener"); return nil })
	if err := c.unwind(context.Background()); !errors.Is(err, boom) {
		t.Errorf("unwind = %v, want the node's error", err)
	}
	if want := []string{"listener", "node", "store"}; !slices.Equal(order, want) {
		t.Errorf("released %v, want %v", order, want)
	}
	if err := c.unwind(context.Background()); err != nil || len(order) != 3 {
		t.Errorf("a second unwind released again: %v, %v", order, err)
	}
}
