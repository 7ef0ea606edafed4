package chat

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/convead/chat-server/auth"
	"github.com/convead/chat-server/channel"
	"github.com/convead/chat-server/store"
)

// The support desk: reading the work (listings with activity), moving it (transfer, claim,
// assignment of pending conversations) and the organisation's view of its managers. Why every
// move is one compare-and-set: docs/design.md "The support desk"; the behaviour for clients:
// README "The support desk".

// Listing page sizes.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// ListQuery is a conversation listing request; empty fields take the caller's defaults.
type ListQuery struct {
	Status    string
	ManagerID string
	VisitorID string
	Limit     int
	Cursor    string
}

// Item is a conversation as a listing shows it: with its newest message and how many messages
// the caller's side has not read.
type Item struct {
	Conversation store.Conversation `json:"conversation"`
	LastMessage  *store.Message     `json:"last_message"`
	UnreadCount  int                `json:"unread_count"`
}

// Page is one page of a listing; NextCursor is "" after the last.
type Page struct {
	Items      []Item `json:"conversations"`
	NextCursor string `json:"next_cursor"`
}

func itemFor(id auth.Identity, ci store.ConversationItem) Item {
	unread := ci.Activity.UnreadByManager
	if id.Role == auth.Visitor {
		unread = ci.Activity.UnreadByVisitor
	}
	return Item{Conversation: ci.Conversation, LastMessage: ci.Activity.LastMessage, UnreadCount: unread}
}

// Check validates a listing request as ListConversations will, and returns it with the default
// limit filled in: the REST door calls it to refuse a bad request before anything is read.
func (q ListQuery) Check() (ListQuery, error) {
	switch q.Status {
	case "", store.StatusOpen, store.StatusPending, store.StatusClosed:
	default:
		return q, Invalid("invalid_status", "status must be open, pending or closed, not %q", clipString(q.Status))
	}
	for field, v := range map[string]string{"manager_id": q.ManagerID, "visitor_id": q.VisitorID} {
		if v != "" && !channel.ValidID(v) {
			return q, invalidID(field)
		}
	}
	switch {
	case q.Limit < 0 || q.Limit > MaxListLimit:
		return q, Invalid("invalid_limit", "limit must be 1 to %d, not %d", MaxListLimit, q.Limit)
	case q.Limit == 0:
		q.Limit = DefaultListLimit
	}
	if q.Cursor != "" {
		if _, _, err := store.DecodeCursor(q.Cursor); err != nil {
			return q, Invalid("invalid_cursor", "cursor must be a next_cursor of an earlier page")
		}
	}
	return q, nil
}

// ListConversations lists conversations of the caller's organisation. A manager sees its own
// open conversations by default (pending ones, which have no manager, with status=pending); a
// service all of them; a visitor only its own, whatever it asks.
func (s *Service) ListConversations(ctx context.Context, id auth.Identity, q ListQuery) (Page, error) {
	q, err := q.Check()
	if err != nil {
		return Page{}, err
	}
	sq := store.ConversationQuery{OrgID: id.Org, Status: q.Status, ManagerID: q.ManagerID, VisitorID: q.VisitorID, Limit: q.Limit, Cursor: q.Cursor}
	switch id.Role {
	case auth.Visitor:
		if q.VisitorID != "" && q.VisitorID != id.Subject {
			return Page{}, Forbidden("a visitor can only list its own conversations")
		}
		sq.VisitorID = id.Subject
	case auth.Manager:
		if sq.Status == "" {
			sq.Status = store.StatusOpen
		}
		if sq.ManagerID == "" && sq.VisitorID == "" && sq.Status != store.StatusPending {
			sq.ManagerID = id.Subject
		}
	case auth.Service:
	default:
		return Page{}, Forbidden("%s may not list conversations", id.Role)
	}
	items, next, err := s.store.ListConversations(ctx, sq)
	if err != nil {
		if errors.Is(err, store.ErrBadCursor) {
			return Page{}, Invalid("invalid_cursor", "cursor must be a next_cursor of an earlier page")
		}
		return Page{}, storeErr(err, nil)
	}
	page := Page{Items: make([]Item, 0, len(items)), NextCursor: next}
	for _, ci := range items {
		page.Items = append(page.Items, itemFor(id, ci))
	}
	return page, nil
}

// ConversationItem returns one conversation as a listing shows it: to its visitor, to the
// managers of its organisation (its previous managers excepted) and to a service.
func (s *Service) ConversationItem(ctx context.Context, id auth.Identity, convID string) (Item, error) {
	if !channel.ValidID(convID) {
		return Item{}, errConversationNotFound
	}
	ci, err := s.store.ConversationItem(ctx, convID)
	if err != nil {
		return Item{}, storeErr(err, errConversationNotFound)
	}
	if ci.OrgID != id.Org {
		return Item{}, errConversationNotFound
	}
	if err := canRead(id, ci.Conversation); err != nil {
		return Item{}, err
	}
	return itemFor(id, ci), nil
}

// canRead: the visitor of the conversation, any manager of the organisation but those it was
// taken from, a service.
func canRead(id auth.Identity, c store.Conversation) error {
	switch id.Role {
	case auth.Service:
		return nil
	case auth.Visitor:
		if id.Subject == c.VisitorID {
			return nil
		}
	case auth.Manager:
		if id.Subject == c.ManagerID || !slices.Contains(c.PreviousManagerIDs, id.Subject) {
			return nil
		}
		return Forbidden("the conversation was taken from manager %s", id.Subject)
	}
	return Forbidden("%s may not read this conversation", id.Role)
}

var (
	errManagerFull = newErr(KindConflict, "manager_full", "the manager has as many open conversations as its capacity allows")
	errNotPending  = newErr(KindConflict, "conversation_not_pending", "the conversation already has a manager")
	errClosed      = newErr(KindConflict, "conversation_closed", "the conversation is closed")
	errMoved       = newErr(KindConflict, "conversation_busy", "the conversation changed concurrently, retry")
)

// manager returns what the store knows of one manager of org (Registered false: nothing).
func (s *Service) manager(ctx context.Context, org, id string) (store.Manager, error) {
	managers, err := s.store.Managers(ctx, org, []string{id})
	if err != nil {
		return store.Manager{}, storeErr(err, nil)
	}
	m := managers[id]
	m.OrgID, m.ID = org, id
	return m, nil
}

// needRoom returns errManagerFull unless m may take one more open conversation.
func (s *Service) needRoom(ctx context.Context, m store.Manager) error {
	capacity := m.Capacity
	if capacity == 0 {
		return nil
	}
	loads, err := s.store.OpenCounts(ctx, m.OrgID)
	if err != nil {
		return storeErr(err, nil)
	}
	if loads[m.ID] >= capacity {
		return errManagerFull
	}
	return nil
}

// lockedConversation loads a conversation of the caller's organisation under the
// organisation's lock, so that the capacity it checks holds until the move; the caller unlocks.
func (s *Service) lockedConversation(ctx context.Context, id auth.Identity, convID string) (store.Conversation, func(), error) {
	mu := s.orgLock(id.Org)
	mu.Lock()
	c, err := s.conversation(ctx, id, convID)
	if err != nil {
		mu.Unlock()
		return c, nil, err
	}
	return c, mu.Unlock, nil
}

// moveTo moves c from its current manager (or from pending) to to ("" back to pending) and
// announces it as an opening is announced: on /service/<visitor> (so the new manager's
// /service/* sees it) and on /conversations/<id>/status for the participants. The caller holds
// the organisation's lock.
func (s *Service) moveTo(ctx context.Context, c store.Conversation, to string) (store.Conversation, error) {
	moved, err := s.store.AssignConversation(ctx, c.ID, c.ManagerID, to, s.now())
	switch {
	case errors.Is(err, store.ErrConflict):
		return store.Conversation{}, errMoved
	case err != nil:
		return store.Conversation{}, storeErr(err, errConversationNotFound)
	}
	s.convs.put(moved)
	s.publish(moved.OrgID, channel.ServiceOf(moved.VisitorID), conversationEvent{"conversation", moved})
	s.publish(moved.OrgID, channel.ConversationSubOf(moved.ID, channel.SubStatus), conversationEvent{"conversation", moved})
	s.log.Info("conversation assigned", "org", moved.OrgID, "conversation", moved.ID, "from", c.ManagerID, "to", to)
	return moved, nil
}

// Transfer gives an open (or pending) conversation to another manager of the organisation:
// its manager or a service may. The target must be registered or on duty, and have room.
func (s *Service) Transfer(ctx context.Context, id auth.Identity, convID, to string) (store.Conversation, error) {
	if !channel.ValidID(to) {
		return store.Conversation{}, invalidID("manager_id")
	}
	c, unlock, err := s.lockedConversation(ctx, id, convID)
	if err != nil {
		return c, err
	}
	defer unlock()
	switch {
	case id.Role == auth.Service:
	case id.Role == auth.Manager && id.Subject == c.ManagerID:
	default:
		return store.Conversation{}, Forbidden("only the conversation's manager or a service may transfer it")
	}
	switch {
	case !c.Active():
		return store.Conversation{}, errClosed
	case c.ManagerID == to:
		return c, nil
	}
	target, err := s.manager(ctx, id.Org, to)
	if err != nil {
		return store.Conversation{}, err
	}
	if !target.Registered && !slices.Contains(s.duty.OnDuty(id.Org), to) {
		return store.Conversation{}, newErr(KindNotFound, "manager_not_found", "manager %s is neither registered nor on duty", to)
	}
	if err := s.needRoom(ctx, target); err != nil {
		return store.Conversation{}, err
	}
	return s.moveTo(ctx, c, to)
}

// Claim gives a pending conversation to the manager asking, within its capacity.
func (s *Service) Claim(ctx context.Context, id auth.Identity, convID string) (store.Conversation, error) {
	if id.Role != auth.Manager {
		return store.Conversation{}, Forbidden("only a manager may claim a conversation")
	}
	c, unlock, err := s.lockedConversation(ctx, id, convID)
	if err != nil {
		return c, err
	}
	defer unlock()
	switch {
	case c.Status == store.StatusClosed:
		return store.Conversation{}, errClosed
	case c.Status != store.StatusPending:
		return store.Conversation{}, errNotPending
	}
	me, err := s.manager(ctx, id.Org, id.Subject)
	if err != nil {
		return store.Conversation{}, err
	}
	if err := s.needRoom(ctx, me); err != nil {
		return store.Conversation{}, err
	}
	return s.moveTo(ctx, c, id.Subject)
}

// pendingBatch bounds the pending conversations one assignment round reads.
const pendingBatch = 100

// AssignPending gives the organisation's pending conversations, oldest first, to its on-duty
// managers within their capacities (the least loaded first, as a new conversation would be),
// and returns how many it assigned. It runs when managers come on duty, when a conversation
// closes, and on every sweep; on several nodes at once, the store's compare-and-set lets one
// assignment of each conversation win.
func (s *Service) AssignPending(ctx context.Context, org string) (int, error) {
	if len(s.duty.OnDuty(org)) == 0 {
		return 0, nil
	}
	mu := s.orgLock(org)
	mu.Lock()
	defer mu.Unlock()
	items, _, err := s.store.ListConversations(ctx, store.ConversationQuery{OrgID: org, Status: store.StatusPending, Oldest: true, Limit: pendingBatch})
	if err != nil {
		return 0, storeErr(err, nil)
	}
	r, err := s.roster(ctx, org, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ci := range items {
		to, ok := r.pick(s.now())
		if !ok {
			return n, nil // nobody has room left
		}
		if _, err := s.moveTo(ctx, ci.Conversation, to); err != nil {
			if errors.Is(err, errMoved) {
				continue // claimed, closed or assigned by another node meanwhile
			}
			return n, err
		}
		n++
	}
	return n, nil
}

// dutySettle is how long an assignment after a duty change waits: a door reports the duty as
// the subscription to /service/* is being made (before its acknowledgement), and the
// announcement of the assignment must find that subscription in place.
const dutySettle = 200 * time.Millisecond

// DutyChanged hears of an organisation whose managers on duty changed on this node, and hands
// its pending conversations to whoever came on duty, in the background.
func (s *Service) DutyChanged(org string) {
	s.background(func(ctx context.Context) {
		select {
		case <-time.After(dutySettle):
		case <-ctx.Done():
			return
		}
		if _, err := s.AssignPending(ctx, org); err != nil {
			s.log.Warn("assign pending conversations", "org", org, "err", err)
		}
	})
}

// background runs fn with a bounded context, unless the service is stopping.
func (s *Service) background(fn func(ctx context.Context)) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.stopped {
		return
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fn(ctx)
	}()
}

// Stop waits for the background work started by DutyChanged and CloseConversation, then
// publishes what the outbox holds; events of later calls are published by their caller.
func (s *Service) Stop() {
	s.bgMu.Lock()
	s.stopped = true
	s.bgMu.Unlock()
	s.bg.Wait()
	s.out.close()
}

// OfflineMessage is the organisation's chat_offline_message, or DefaultOfflineMessage.
func (s *Service) OfflineMessage(ctx context.Context, org string) (string, error) {
	o, err := s.orgOf(ctx, org)
	if err != nil {
		return "", err
	}
	return offlineMessage(o), nil
}

// OnDutyManagers returns the managers of the caller's organisation on duty now (cluster-wide
// in cluster mode), for its managers and services.
func (s *Service) OnDutyManagers(id auth.Identity) ([]string, error) {
	if id.Role != auth.Manager && id.Role != auth.Service {
		return nil, Forbidden("%s may not see who is on duty", id.Role)
	}
	return s.onDuty(id.Org), nil
}

func (s *Service) onDuty(org string) []string {
	on := s.duty.OnDuty(org)
	if on == nil {
		on = []string{}
	}
	return on
}

// Org returns an organisation to its administrators.
func (s *Service) Org(ctx context.Context, id auth.Identity, org string) (store.Org, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return store.Org{}, err
	}
	o, err := s.store.Org(ctx, org)
	return o, storeErr(err, newErr(KindNotFound, "org_not_found", "no organisation %s", org))
}

// Duty returns the managers of org on duty now, to its administrators.
func (s *Service) Duty(id auth.Identity, org string) ([]string, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return nil, err
	}
	return s.onDuty(org), nil
}

// ManagerInfo is a manager as administrators see it.
type ManagerInfo struct {
	store.Manager
	OnDuty            bool `json:"on_duty"`
	OpenConversations int  `json:"open_conversations"`
}

// Managers lists the organisation's registered managers and, after them, those on duty or
// holding open conversations without a registration.
func (s *Service) Managers(ctx context.Context, id auth.Identity, org string) ([]ManagerInfo, error) {
	if err := s.requireAdmin(id, org); err != nil {
		return nil, err
	}
	registered, err := s.store.RegisteredManagers(ctx, org)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	loads, err := s.store.OpenCounts(ctx, org)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	onDuty := s.duty.OnDuty(org)
	out := make([]ManagerInfo, 0, len(registered))
	seen := map[string]bool{}
	for _, m := range registered {
		seen[m.ID] = true
		out = append(out, ManagerInfo{Manager: m, OnDuty: slices.Contains(onDuty, m.ID), OpenConversations: loads[m.ID]})
	}
	var others []string
	for _, m := range onDuty {
		if !seen[m] {
			seen[m] = true
			others = append(others, m)
		}
	}
	for m := range loads {
		if !seen[m] {
			seen[m] = true
			others = append(others, m)
		}
	}
	slices.Sort(others)
	for _, m := range others {
		out = append(out, ManagerInfo{Manager: store.Manager{OrgID: org, ID: m}, OnDuty: slices.Contains(onDuty, m), OpenConversations: loads[m]})
	}
	return out, nil
}

// DeleteManager removes a manager's registration. Its open conversations go to the other
// on-duty managers, or wait as pending: a removed manager keeps no work.
func (s *Service) DeleteManager(ctx context.Context, id auth.Identity, org, manager string) error {
	if err := s.requireAdmin(id, org); err != nil {
		return err
	}
	if !channel.ValidID(manager) {
		return invalidID("manager_id")
	}
	if err := s.store.DeleteManager(ctx, org, manager); err != nil {
		return storeErr(err, newErr(KindNotFound, "manager_not_found", "manager %s is not registered", manager))
	}
	_, err := s.release(ctx, org, manager, true)
	return err
}

// release hands the open conversations of manager to the least-loaded on-duty managers (never
// back to it); those nobody can take become pending when toPending, or stay otherwise. It
// returns how many moved.
func (s *Service) release(ctx context.Context, org, manager string, toPending bool) (int, error) {
	mu := s.orgLock(org)
	mu.Lock()
	defer mu.Unlock()
	r, err := s.roster(ctx, org, manager)
	if err != nil {
		return 0, err
	}
	moved := 0
	for {
		items, _, err := s.store.ListConversations(ctx, store.ConversationQuery{OrgID: org, Status: store.StatusOpen, ManagerID: manager, Oldest: true, Limit: pendingBatch})
		if err != nil {
			return moved, storeErr(err, nil)
		}
		progress := false
		for _, ci := range items {
			to, ok := r.pick(s.now())
			if !ok && !toPending {
				return moved, nil
			}
			if _, err := s.moveTo(ctx, ci.Conversation, to); err != nil {
				if errors.Is(err, errMoved) {
					continue
				}
				return moved, err
			}
			moved++
			progress = true
		}
		if len(items) < pendingBatch || !progress {
			return moved, nil
		}
	}
}

// EraseVisitor deletes everything stored of a visitor of org (README "The support desk"), for
// its administrators. An active conversation is closed first, as a closing by hand would be, so
// that its manager and the visitor's open widgets learn that it ended rather than see it vanish.
// Erasing a visitor with nothing stored is no error, so that a retried request succeeds.
func (s *Service) EraseVisitor(ctx context.Context, id auth.Identity, org, visitor string) error {
	if err := s.requireAdmin(id, org); err != nil {
		return err
	}
	if !channel.ValidID(visitor) {
		return invalidID("visitor_id")
	}
	// Openings create under this lock: none slips in between the closing and the deletion.
	mu := s.orgLock(org)
	mu.Lock()
	defer mu.Unlock()
	c, err := s.store.OpenConversation(ctx, org, visitor)
	switch {
	case err == nil:
		if _, err := s.close(ctx, c); err != nil {
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		return storeErr(err, nil)
	}
	if err := s.store.DeleteVisitor(ctx, org, visitor); err != nil {
		return storeErr(err, nil)
	}
	s.log.Info("visitor erased", "org", org, "visitor", visitor)
	return nil
}
