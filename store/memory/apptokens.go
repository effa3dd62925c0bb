package memory

import (
	"context"
	"strings"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/store/storekit"
)

var _ serversync.AppTokenStore = (*Store)(nil)

// AppToken implements serversync.AppTokenStore.
func (s *Store) AppToken(ctx context.Context, key string) (serversync.AppToken, error) {
	if err := storekit.CheckAppTokenKey(key); err != nil {
		return serversync.AppToken{}, err
	}
	if err := s.rlock(ctx); err != nil {
		return serversync.AppToken{}, err
	}
	defer s.mu.RUnlock()
	t, ok := s.appTokens[key]
	if !ok {
		return serversync.AppToken{}, notFound("app token", key)
	}
	return t, nil
}

// PutAppToken implements serversync.AppTokenStore.
func (s *Store) PutAppToken(ctx context.Context, key string, t serversync.AppToken) (serversync.AppToken, error) {
	if err := storekit.CheckAppToken(key, t); err != nil {
		return serversync.AppToken{}, err
	}
	if err := s.lock(ctx); err != nil {
		return serversync.AppToken{}, err
	}
	defer s.mu.Unlock()
	if stored, ok := s.appTokens[key]; ok && storekit.KeepStoredAppToken(stored, t) {
		return stored, nil
	}
	if s.appTokens == nil {
		s.appTokens = map[string]serversync.AppToken{}
	}
	s.appTokens[key] = t // a value; its Secret is immutable
	return t, nil
}

// DeleteAppTokens implements serversync.AppTokenStore.
func (s *Store) DeleteAppTokens(ctx context.Context, prefix string) error {
	if err := storekit.CheckAppTokenPrefix(prefix); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for key := range s.appTokens {
		if strings.HasPrefix(key, prefix) {
			delete(s.appTokens, key)
		}
	}
	return nil
}
