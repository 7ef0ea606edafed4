package bolt

import (
	"fmt"
	"sync"

	bbolt "go.etcd.io/bbolt"
)

// groupCommit runs write functions in shared transactions, one fsync for all of them: the
// writes that arrive while a commit is under way are committed together by the next one. A
// lone write commits at once and a busy store commits back to back, without the timer of
// bbolt's DB.Batch, whose MaxBatchDelay every write waited for however idle the store was, and
// which bounded a group to what arrived within it (a closed loop of N posts then runs at N per
// delay plus commit).
type groupCommit struct {
	db    *bbolt.DB
	mu    sync.Mutex
	queue []*pendingWrite
	busy  bool // a goroutine is committing, or about to take the queue
}

type pendingWrite struct {
	fn   func(*bbolt.Tx) error
	done chan error
}

// do runs fn in the next group commit and returns once that commit is durable (or failed). As
// with DB.Batch, fn may run more than once: when a write of a group fails, the group is rolled
// back and committed again without it, and the failed write runs alone for its own answer.
func (g *groupCommit) do(fn func(*bbolt.Tx) error) error {
	w := &pendingWrite{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	lead := !g.busy
	g.busy = true
	g.mu.Unlock()
	if lead {
		g.lead()
	}
	return <-w.done
}

// lead commits what is queued. If more arrived meanwhile, a new goroutine commits it, so that
// the writer that led can return to its caller instead of serving others for as long as the
// load lasts.
func (g *groupCommit) lead() {
	g.mu.Lock()
	group := g.queue
	g.queue = nil
	g.mu.Unlock()
	g.commit(group)
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.busy = false
		return
	}
	go g.lead()
}

func (g *groupCommit) commit(group []*pendingWrite) {
	for len(group) > 0 {
		failed := -1
		err := g.db.Update(func(tx *bbolt.Tx) error {
			for i, w := range group {
				if err := safely(w.fn, tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, w := range group {
				w.done <- err
			}
			return
		}
		w := group[failed]
		group = append(group[:failed:failed], group[failed+1:]...)
		w.done <- g.db.Update(func(tx *bbolt.Tx) error { return safely(w.fn, tx) })
	}
}

// safely turns a panic of fn into its error, so that it fails its own write and not the
// goroutine committing everyone's.
func safely(fn func(*bbolt.Tx) error, tx *bbolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("write panicked: %v", p)
		}
	}()
	return fn(tx)
}
