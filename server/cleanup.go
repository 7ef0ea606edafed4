package server

import (
	"context"
	"errors"
)

// cleanupStack releases what a build that failed half-way had acquired. Each step that
// acquires a resource pushes what releases it; when a later step fails, unwind releases them
// all, newest first, so that nothing is released while something acquired after it still uses
// it (the cluster node announces its goodbye before the store it came after closes).
type cleanupStack []func(context.Context) error

// push adds the release of a resource just acquired.
func (c *cleanupStack) push(release func(context.Context) error) { *c = append(*c, release) }

// unwind releases everything pushed, newest first, each even when one before it failed, and
// empties the stack.
func (c *cleanupStack) unwind(ctx context.Context) error {
	var errs []error
	for i := len(*c) - 1; i >= 0; i-- {
		if err := (*c)[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	*c = nil
	return errors.Join(errs...)
}
