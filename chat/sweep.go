package chat

import (
	"context"
	"errors"
	"time"

	"github.com/convead/chat-server/store"
)

// Sweeps: the work no request starts. Every node runs them; each step is safe to run on
// several nodes at once (assignment is a compare-and-set in the store, deletion is idempotent;
// docs/design.md "The support desk").

// RetentionBatch bounds the conversations one sweep deletes per organisation, so that a first
// sweep over years of history does not hold the store for long: the next sweeps go on.
const RetentionBatch = 500

// RunSweeps sweeps every interval until ctx ends.
func (s *Service) RunSweeps(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx, s.now()); err != nil && ctx.Err() == nil {
				s.log.Warn("sweep", "err", err)
			}
		}
	}
}

// Sweep runs once over every organisation with a desk setting: pending conversations go to
// managers who have room (under offline_mode queue), managers off duty for reassign_after lose
// their open conversations, and closed conversations older than the retention are deleted. now
// is the sweep's clock; errors of one organisation do not stop the others.
func (s *Service) Sweep(ctx context.Context, now time.Time) error {
	orgs, err := s.store.Orgs(ctx)
	if err != nil {
		return storeErr(err, nil)
	}
	var errs []error
	for _, o := range orgs {
		if o.OfflineMode == store.OfflineQueue {
			if _, err := s.AssignPending(ctx, o.ID); err != nil {
				errs = append(errs, err)
			}
		}
		if o.ReassignAfter > 0 {
			if err := s.reassignStranded(ctx, o, now); err != nil {
				errs = append(errs, err)
			}
		}
		if o.Retention > 0 {
			before := now.Add(-time.Duration(o.Retention) * 24 * time.Hour)
			n, err := s.store.DeleteClosedBefore(ctx, o.ID, before, RetentionBatch)
			if err != nil {
				errs = append(errs, storeErr(err, nil))
			} else if n > 0 {
				s.log.Info("retention: closed conversations deleted", "org", o.ID, "count", n, "closed_before", before)
			}
		}
	}
	return errors.Join(errs...)
}

// reassignStranded moves the open conversations of managers that have been off duty for the
// organisation's reassign_after. Off duty is counted from the first sweep of this node that
// saw the manager holding open conversations while off duty (a restarted node counts again
// from its start).
func (s *Service) reassignStranded(ctx context.Context, o store.Org, now time.Time) error {
	loads, err := s.store.OpenCounts(ctx, o.ID)
	if err != nil {
		return storeErr(err, nil)
	}
	onDuty := map[string]bool{}
	for _, m := range s.duty.OnDuty(o.ID) {
		onDuty[m] = true
	}
	s.offMu.Lock()
	var due []string
	was, stranded := s.offSince[o.ID], map[string]time.Time{}
	for m, n := range loads {
		if n == 0 || onDuty[m] {
			continue // forgotten: a manager back on duty counts again from its next leave
		}
		since, seen := was[m]
		if !seen {
			since = now
		}
		stranded[m] = since
		if now.Sub(since) >= time.Duration(o.ReassignAfter) {
			due = append(due, m)
		}
	}
	if len(stranded) == 0 {
		delete(s.offSince, o.ID)
	} else {
		s.offSince[o.ID] = stranded
	}
	s.offMu.Unlock()
	for _, m := range due {
		n, err := s.release(ctx, o.ID, m, o.OfflineMode == store.OfflineQueue)
		if err != nil {
			return err
		}
		if n > 0 {
			s.log.Info("reassigned the conversations of a manager off duty", "org", o.ID, "manager", m, "count", n, "reassign_after", time.Duration(o.ReassignAfter))
		}
	}
	return nil
}
