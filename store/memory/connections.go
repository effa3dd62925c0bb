package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/serversync/serversync"
)

// connectionBudget holds one budget's slots and its line of waiting requests.
type connectionBudget struct {
	held    []serversync.ConnectionSlot // in no particular order
	waiting []serversync.ConnectionSlot // in line, first come first
}

// AcquireConnectionSlot implements serversync.ConnectionSlotStore: the lowest free
// slot number is taken.
func (s *Store) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	if err := s.lock(ctx); err != nil {
		return serversync.ConnectionSlot{}, false, err
	}
	defer s.mu.Unlock()
	if req.Limit < 1 || req.ID == "" {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("memory: connection budget %q: a request needs an ID and a limit of at least 1 (ID %q, limit %d)", req.Key, req.ID, req.Limit)
	}
	b := s.connectionBudgets[req.Key]
	if b == nil {
		b = &connectionBudget{}
		if s.connectionBudgets == nil {
			s.connectionBudgets = map[string]*connectionBudget{}
		}
		s.connectionBudgets[req.Key] = b
	}
	// Holders and waiters that stopped renewing or asking (they died or stalled)
	// give their slot or place up.
	expired := func(slot serversync.ConnectionSlot) bool { return !slot.ExpiresAt.After(req.Now) }
	b.held = slices.DeleteFunc(b.held, expired)
	b.waiting = slices.DeleteFunc(b.waiting, expired)

	mine := func(slot serversync.ConnectionSlot) bool { return slot.ID == req.ID && slot.Host == req.Host }
	if i := slices.IndexFunc(b.held, mine); i >= 0 { // granted before; the reply was lost
		b.held[i].ExpiresAt = req.Now.Add(req.TTL)
		return b.held[i], true, nil
	}
	place := slices.IndexFunc(b.waiting, mine)
	ahead := len(b.waiting) // a new request queues behind everyone
	if place >= 0 {
		ahead = place
	}
	if len(b.held)+ahead >= req.Limit {
		if place < 0 {
			if s.connectionSlotTaken(req.ID) {
				return serversync.ConnectionSlot{}, false, fmt.Errorf("memory: connection slot request %q: %w", req.ID, serversync.ErrAlreadyExists)
			}
			b.waiting = append(b.waiting, serversync.ConnectionSlot{ID: req.ID, Key: req.Key, Slot: -1, Host: req.Host})
			place = len(b.waiting) - 1
		}
		b.waiting[place].ExpiresAt = req.Now.Add(cmpOr(req.WaitTTL, req.TTL))
		return b.waiting[place], false, nil
	}
	if place >= 0 {
		b.waiting = slices.Delete(b.waiting, place, place+1)
	} else if s.connectionSlotTaken(req.ID) {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("memory: connection slot request %q: %w", req.ID, serversync.ErrAlreadyExists)
	}
	n := 0
	for slices.ContainsFunc(b.held, func(slot serversync.ConnectionSlot) bool { return slot.Slot == n }) {
		n++
	}
	slot := serversync.ConnectionSlot{ID: req.ID, Key: req.Key, Slot: n, Host: req.Host, ExpiresAt: req.Now.Add(req.TTL)}
	b.held = append(b.held, slot)
	return slot, true, nil
}

func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

// connectionSlotTaken reports whether any budget holds a slot or place under id,
// which persistent stores keep unique. The lock must be held.
func (s *Store) connectionSlotTaken(id string) bool {
	for _, b := range s.connectionBudgets {
		has := func(slot serversync.ConnectionSlot) bool { return slot.ID == id }
		if slices.ContainsFunc(b.held, has) || slices.ContainsFunc(b.waiting, has) {
			return true
		}
	}
	return false
}

// heldSlot returns the list slot (or place in line) is kept in, and where, while
// it is still its holder's. The lock must be held.
func (s *Store) heldSlot(slot serversync.ConnectionSlot) (list *[]serversync.ConnectionSlot, i int, err error) {
	if b := s.connectionBudgets[slot.Key]; b != nil {
		mine := func(x serversync.ConnectionSlot) bool { return x.ID == slot.ID && x.Host == slot.Host }
		if i := slices.IndexFunc(b.held, mine); i >= 0 {
			return &b.held, i, nil
		}
		if i := slices.IndexFunc(b.waiting, mine); i >= 0 {
			return &b.waiting, i, nil
		}
	}
	return nil, -1, fmt.Errorf("memory: connection slot %q of %q: %w", slot.ID, slot.Key, serversync.ErrLeaseLost)
}

// RenewConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	if err := s.lock(ctx); err != nil {
		return serversync.ConnectionSlot{}, err
	}
	defer s.mu.Unlock()
	list, i, err := s.heldSlot(slot)
	if err != nil {
		return serversync.ConnectionSlot{}, err
	}
	(*list)[i].ExpiresAt = now.Add(ttl)
	return (*list)[i], nil
}

// ReleaseConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) ReleaseConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	list, i, err := s.heldSlot(slot)
	if err != nil {
		return err
	}
	*list = slices.Delete(*list, i, i+1)
	if b := s.connectionBudgets[slot.Key]; len(b.held) == 0 && len(b.waiting) == 0 {
		delete(s.connectionBudgets, slot.Key) // memory does not grow with the budgets ever used
	}
	return nil
}
