package chat

import (
	"errors"
	"fmt"
	"testing"
)

// TestKindOf: a wrapped domain error keeps its kind; anything else is the server's fault.
func TestKindOf(t *testing.T) {
	down := fmt.Errorf("%w (%w)", newErr(KindUnavailable, "store_unavailable", "retry later"), errors.New("dial tcp: refused"))
	cases := []struct {
		err   error
		kind  Kind
		fault bool
	}{
		{Forbidden("no"), KindForbidden, false},
		{fmt.Errorf("wrapped: %w", errConversationNotFound), KindNotFound, false},
		{rateLimited("posts"), KindRateLimited, false},
		{down, KindUnavailable, true},
		{errors.New("a bug"), KindInternal, true},
	}
	for _, tc := range cases {
		if k := KindOf(tc.err); k != tc.kind || k.ServerFault() != tc.fault {
			t.Errorf("KindOf(%v) = %v (fault %v), want %v (fault %v)", tc.err, k, k.ServerFault(), tc.kind, tc.fault)
		}
	}
}
