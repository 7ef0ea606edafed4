package bolt

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"
)

// TestGroupCommitIsolatesFailures commits many writes at once, some failing or panicking: each
// gets its own answer, and exactly the others are stored.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	bad := errors.New("refused")
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.writes.do(func(tx *bbolt.Tx) error {
				switch i % 10 {
				case 3:
					return bad
				case 7:
					panic("boom")
				}
				return tx.Bucket(bMeta).Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
			})
		})
	}
	wg.Wait()
	err = s.db.View(func(tx *bbolt.Tx) error {
		for i, err := range errs {
			stored := tx.Bucket(bMeta).Get(fmt.Appendf(nil, "k%d", i)) != nil
			switch {
			case i%10 == 3 && !errors.Is(err, bad), i%10 == 7 && err == nil:
				t.Errorf("write %d: error %v, want its own failure", i, err)
			case i%10 != 3 && i%10 != 7 && err != nil:
				t.Errorf("write %d failed with the others: %v", i, err)
			case stored != (err == nil):
				t.Errorf("write %d: stored %v, error %v", i, stored, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
