package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/serversync/serversync"
)

// AcquireConnectionSlot implements serversync.ConnectionSlotStore: the lowest free
// slot number is taken.
func (s *Store) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	if req.Limit < 1 {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("memory: connection budget %q: limit %d is less than 1", req.Key, req.Limit)
	}
	if err := s.lock(ctx); err != nil {
		return serversync.ConnectionSlot{}, false, err
	}
	defer s.mu.Unlock()
	held := s.connectionSlots[req.Key]
	for n, slot := range held {
		if !slot.ExpiresAt.After(req.Now) {
			delete(held, n) // its holder died or stalled: the slot is free again
		}
	}
	if len(held) >= req.Limit {
		return serversync.ConnectionSlot{}, false, nil
	}
	if held == nil {
		if s.connectionSlots == nil {
			s.connectionSlots = map[string]map[int]serversync.ConnectionSlot{}
		}
		held = map[int]serversync.ConnectionSlot{}
		s.connectionSlots[req.Key] = held
	}
	n := 0
	for ; ; n++ {
		if _, taken := held[n]; !taken {
			break
		}
	}
	s.connectionTokens++
	slot := serversync.ConnectionSlot{Key: req.Key, Slot: n, Host: req.Host, ExpiresAt: req.Now.Add(req.TTL), Token: s.connectionTokens}
	held[n] = slot
	return slot, true, nil
}

// heldSlot reports whether slot is still its holder's. The lock must be held.
func (s *Store) heldSlot(slot serversync.ConnectionSlot) error {
	if current, ok := s.connectionSlots[slot.Key][slot.Slot]; !ok || current.Token != slot.Token || current.Host != slot.Host {
		return fmt.Errorf("memory: connection slot %d of %q (token %d): %w", slot.Slot, slot.Key, slot.Token, serversync.ErrLeaseLost)
	}
	return nil
}

// RenewConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	if err := s.lock(ctx); err != nil {
		return serversync.ConnectionSlot{}, err
	}
	defer s.mu.Unlock()
	if err := s.heldSlot(slot); err != nil {
		return serversync.ConnectionSlot{}, err
	}
	slot.ExpiresAt = now.Add(ttl)
	s.connectionSlots[slot.Key][slot.Slot] = slot
	return slot, nil
}

// ReleaseConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) ReleaseConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.heldSlot(slot); err != nil {
		return err
	}
	held := s.connectionSlots[slot.Key]
	if delete(held, slot.Slot); len(held) == 0 {
		delete(s.connectionSlots, slot.Key) // memory does not grow with the budgets ever used
	}
	return nil
}
