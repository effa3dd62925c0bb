package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/serversync/serversync"
	"github.com/serversync/serversync/auth"
)

// appTokensOf returns s as an AppTokenStore, skipping t for a store without one.
func appTokensOf(t *testing.T, s serversync.Store) serversync.AppTokenStore {
	t.Helper()
	ts, ok := s.(serversync.AppTokenStore)
	if !ok {
		t.Skip("storetest: the store implements no serversync.AppTokenStore")
	}
	return ts
}

// NewAppToken returns a token whose access token is value, expiring at expiry and
// obtained an hour before.
func NewAppToken(value string, expiry time.Time) serversync.AppToken {
	return serversync.AppToken{
		AccessToken: auth.NewSecret(value),
		TokenType:   "Bearer",
		Expiry:      expiry,
		UpdatedAt:   expiry.Add(-time.Hour),
	}
}

// assertSameAppToken checks that got is want as a store may give it back: times
// equal as instants.
func assertSameAppToken(t *testing.T, want, got serversync.AppToken, msgAndArgs ...any) bool {
	t.Helper()
	return assert.Equal(t, want.AccessToken.Reveal(), got.AccessToken.Reveal(), msgAndArgs...) &&
		assert.Equal(t, want.TokenType, got.TokenType, msgAndArgs...) &&
		assert.True(t, want.Expiry.Equal(got.Expiry), "Expiry: want %v, got %v %v", want.Expiry, got.Expiry, fmt.Sprint(msgAndArgs...)) &&
		assert.True(t, want.UpdatedAt.Equal(got.UpdatedAt), "UpdatedAt: want %v, got %v %v", want.UpdatedAt, got.UpdatedAt, fmt.Sprint(msgAndArgs...))
}

// mustPutAppToken puts tok under key and returns the token stored.
func mustPutAppToken(t *testing.T, s serversync.AppTokenStore, key string, tok serversync.AppToken) serversync.AppToken {
	t.Helper()
	got, err := s.PutAppToken(t.Context(), key, tok)
	require.NoError(t, err, "PutAppToken(%q)", key)
	return got
}

// requireAppToken checks that key holds want.
func requireAppToken(t *testing.T, s serversync.AppTokenStore, key string, want serversync.AppToken) {
	t.Helper()
	got, err := s.AppToken(t.Context(), key)
	require.NoError(t, err, "AppToken(%q)", key)
	assertSameAppToken(t, want, got, key)
}

// requireNoAppToken checks that key holds no token.
func requireNoAppToken(t *testing.T, s serversync.AppTokenStore, key string) {
	t.Helper()
	_, err := s.AppToken(t.Context(), key)
	require.ErrorIs(t, err, serversync.ErrNotFound, "AppToken(%q)", key)
}

// oddKeys are keys a store must keep apart and match exactly: SQL pattern
// characters, quotes, separators, non-ASCII text, case, the longest key.
var oddKeys = []string{
	"p1/https://outlook.office365.com/.default",
	"P1/https://outlook.office365.com/.default",
	"p%/x", "p_/x", `p\/x`, "p'/x", `p"/x`, "p;--/x", "p /x", "p\t\n/x",
	"pü/€ 日本", "p1", "p10/a",
	strings.Repeat("k", serversync.AppTokenKeyMaxLength),
}

func testAppTokens(t *testing.T, h harness) {
	h.run(t, "RoundTrip", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		tok := NewAppToken("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.access", BaseTime.Add(time.Hour).In(otherZone))
		got := mustPutAppToken(t, ts, "p9/https://graph.microsoft.com/.default", tok)
		assertSameAppToken(t, tok, got, "PutAppToken returns the token stored")
		requireAppToken(t, ts, "p9/https://graph.microsoft.com/.default", tok)

		// Every key is its own, whatever characters it holds.
		for i, key := range oddKeys {
			mustPutAppToken(t, ts, key, NewAppToken(fmt.Sprint("token-", i), BaseTime.Add(time.Duration(i)*time.Minute)))
		}
		for i, key := range oddKeys {
			requireAppToken(t, ts, key, NewAppToken(fmt.Sprint("token-", i), BaseTime.Add(time.Duration(i)*time.Minute)))
		}
	})

	h.run(t, "NotFound", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		requireNoAppToken(t, ts, "p1/never-stored")
		mustPutAppToken(t, ts, "p1/a", NewAppToken("a", BaseTime))
		requireNoAppToken(t, ts, "p1/A")
		requireNoAppToken(t, ts, "p1/")
		requireNoAppToken(t, ts, "p1/a ")
	})

	h.run(t, "LaterExpiryWins", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		const key = "p1/resource"
		fresh := NewAppToken("fresh", BaseTime.Add(time.Hour))
		mustPutAppToken(t, ts, key, fresh)

		stale := NewAppToken("stale", BaseTime.Add(30*time.Minute))
		stale.UpdatedAt = BaseTime.Add(time.Minute) // obtained later, but expires sooner
		got := mustPutAppToken(t, ts, key, stale)
		assertSameAppToken(t, fresh, got, "a token expiring sooner does not replace one expiring later")
		requireAppToken(t, ts, key, fresh)

		same := NewAppToken("same expiry", fresh.Expiry)
		got = mustPutAppToken(t, ts, key, same)
		assertSameAppToken(t, same, got, "of two with the same expiry the one put last is kept")
		requireAppToken(t, ts, key, same)

		later := NewAppToken("later", BaseTime.Add(2*time.Hour).In(otherZone))
		got = mustPutAppToken(t, ts, key, later)
		assertSameAppToken(t, later, got)
		requireAppToken(t, ts, key, later)
	})

	h.run(t, "ConcurrentWritersLaterExpiryWins", func(t *testing.T, s serversync.Store) {
		// For each key, two writers put at the same moment, the slower-to-start one
		// holding the token that expires later; whichever order the store runs them
		// in, the later token is what stays, and each writer is told what is stored.
		ts := appTokensOf(t, s)
		const keys = 20
		var wg sync.WaitGroup
		start := make(chan struct{})
		for k := range keys {
			key := fmt.Sprint("p", k, "/resource")
			for w, expiry := range []time.Duration{time.Hour, time.Hour + time.Second} {
				tok := NewAppToken(fmt.Sprint("writer-", w), BaseTime.Add(expiry))
				wg.Go(func() {
					<-start
					got, err := ts.PutAppToken(t.Context(), key, tok)
					if !assert.NoError(t, err) {
						return
					}
					assert.False(t, got.Expiry.Before(tok.Expiry), "%s: writer %d was told a token expiring sooner than its own", key, w)
					if got.Expiry.Equal(tok.Expiry) {
						assert.Equal(t, tok.AccessToken.Reveal(), got.AccessToken.Reveal(), key)
					}
				})
			}
		}
		close(start)
		wg.Wait()
		for k := range keys {
			requireAppToken(t, ts, fmt.Sprint("p", k, "/resource"), NewAppToken("writer-1", BaseTime.Add(time.Hour+time.Second)))
		}
	})

	t.Run("SharedBetweenHandles", func(t *testing.T) {
		// Handles on one database are processes sharing the store: a token one puts
		// the others read, and a slower one does not replace it.
		t.Parallel()
		db := h.openDatabase(t)
		keys := testKeys(t, 1)
		a, b := db.handle(t, keys), db.handle(t, keys)
		ta, tb := appTokensOf(t, a), appTokensOf(t, b)
		fresh := NewAppToken("from-a", BaseTime.Add(time.Hour))
		mustPutAppToken(t, ta, "p1/r", fresh)
		requireAppToken(t, tb, "p1/r", fresh)
		got := mustPutAppToken(t, tb, "p1/r", NewAppToken("from-b", BaseTime.Add(time.Minute)))
		assertSameAppToken(t, fresh, got)

		// Many writers on both handles at once.
		var wg sync.WaitGroup
		start := make(chan struct{})
		const writers = 8
		for w := range writers {
			ts := []serversync.AppTokenStore{ta, tb}[w%2]
			tok := NewAppToken(fmt.Sprint("writer-", w), BaseTime.Add(2*time.Hour+time.Duration(w)*time.Second))
			wg.Go(func() {
				<-start
				got, err := ts.PutAppToken(t.Context(), "p2/r", tok)
				if assert.NoError(t, err) {
					assert.False(t, got.Expiry.Before(tok.Expiry), "writer %d was told a token expiring sooner than its own", w)
				}
			})
		}
		close(start)
		wg.Wait()
		last := NewAppToken(fmt.Sprint("writer-", writers-1), BaseTime.Add(2*time.Hour+(writers-1)*time.Second))
		requireAppToken(t, ta, "p2/r", last)
		requireAppToken(t, tb, "p2/r", last)

		require.NoError(t, tb.DeleteAppTokens(t.Context(), "p1/"))
		requireNoAppToken(t, ta, "p1/r")
	})

	h.run(t, "DeleteByPrefix", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		for i, key := range oddKeys {
			mustPutAppToken(t, ts, key, NewAppToken(fmt.Sprint("token-", i), BaseTime.Add(time.Hour)))
		}
		remaining := map[string]bool{}
		for _, key := range oddKeys {
			remaining[key] = true
		}
		deleteAndCheck := func(prefix string, gone ...string) {
			t.Helper()
			require.NoError(t, ts.DeleteAppTokens(t.Context(), prefix), "DeleteAppTokens(%q)", prefix)
			for _, key := range gone {
				require.True(t, remaining[key], "the test deletes %q once", key)
				delete(remaining, key)
			}
			for _, key := range oddKeys {
				_, err := ts.AppToken(t.Context(), key)
				if remaining[key] {
					assert.NoError(t, err, "DeleteAppTokens(%q) must keep %q", prefix, key)
				} else {
					assert.ErrorIs(t, err, serversync.ErrNotFound, "DeleteAppTokens(%q) must have removed %q", prefix, key)
				}
			}
		}
		deleteAndCheck("p1/", "p1/https://outlook.office365.com/.default") // not P1/, p1, p10/a
		deleteAndCheck("p%", "p%/x")                                       // no pattern: not every key
		deleteAndCheck("p_", "p_/x")
		deleteAndCheck(`p\`, `p\/x`)
		deleteAndCheck("pü/€", "pü/€ 日本")
		deleteAndCheck("p1", "p1", "p10/a")
		deleteAndCheck("nothing/")                                       // removes none
		deleteAndCheck(oddKeys[len(oddKeys)-1] + "k")                    // longer than any key
		deleteAndCheck("p", "p'/x", `p"/x`, "p;--/x", "p /x", "p\t\n/x") // case-sensitive: not P1/
		deleteAndCheck("P", "P1/https://outlook.office365.com/.default")
		deleteAndCheck(oddKeys[len(oddKeys)-1], oddKeys[len(oddKeys)-1]) // a whole key is its own prefix
		assert.Empty(t, remaining)
	})

	h.run(t, "DeleteEverything", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		for i, key := range oddKeys {
			mustPutAppToken(t, ts, key, NewAppToken(fmt.Sprint("token-", i), BaseTime.Add(time.Hour)))
		}
		require.NoError(t, ts.DeleteAppTokens(t.Context(), ""))
		for _, key := range oddKeys {
			requireNoAppToken(t, ts, key)
		}
		require.NoError(t, ts.DeleteAppTokens(t.Context(), ""), "deleting none is not an error")
		// The store works on after it.
		tok := NewAppToken("again", BaseTime)
		mustPutAppToken(t, ts, oddKeys[0], tok)
		requireAppToken(t, ts, oddKeys[0], tok)
	})

	h.run(t, "BadInputRefused", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		ctx := t.Context()
		field := func(t *testing.T, err error, want string, msg string) {
			t.Helper()
			var verr *serversync.ValidationError
			if assert.ErrorAs(t, err, &verr, msg) {
				assert.Equal(t, "AppToken", verr.Entity, msg)
				assert.Equal(t, want, verr.Field, msg)
			}
		}
		good := NewAppToken("token", BaseTime)
		for name, key := range map[string]string{
			"empty":     "",
			"too long":  strings.Repeat("k", serversync.AppTokenKeyMaxLength+1),
			"not UTF-8": "p1/\xff\xfe",
			"NUL":       "p1/\x00r",
			"only NUL":  "\x00",
		} {
			_, err := ts.PutAppToken(ctx, key, good)
			field(t, err, "Key", "PutAppToken: "+name)
			_, err = ts.AppToken(ctx, key)
			field(t, err, "Key", "AppToken: "+name)
			if key != "" && len(key) <= serversync.AppTokenKeyMaxLength {
				field(t, ts.DeleteAppTokens(ctx, key), "Key", "DeleteAppTokens: "+name)
			}
		}
		noToken := good
		noToken.AccessToken = auth.Secret{}
		_, err := ts.PutAppToken(ctx, "p1/r", noToken)
		field(t, err, "AccessToken", "a token without an access token")
		noExpiry := good
		noExpiry.Expiry = time.Time{}
		_, err = ts.PutAppToken(ctx, "p1/r", noExpiry)
		field(t, err, "Expiry", "a token without an expiry")
		requireNoAppToken(t, ts, "p1/r")
		// A prefix longer than any key is no error: it matches nothing.
		require.NoError(t, ts.DeleteAppTokens(ctx, strings.Repeat("k", serversync.AppTokenKeyMaxLength+1)))
	})

	h.run(t, "CancelledContext", func(t *testing.T, s serversync.Store) {
		ts := appTokensOf(t, s)
		kept := NewAppToken("kept", BaseTime.Add(time.Hour))
		mustPutAppToken(t, ts, "p1/r", kept)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := ts.AppToken(ctx, "p1/r")
		require.ErrorIs(t, err, context.Canceled)
		_, err = ts.PutAppToken(ctx, "p1/r", NewAppToken("never", BaseTime.Add(2*time.Hour)))
		require.ErrorIs(t, err, context.Canceled)
		_, err = ts.PutAppToken(ctx, "p2/r", NewAppToken("never", BaseTime.Add(2*time.Hour)))
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorIs(t, ts.DeleteAppTokens(ctx, "p1/"), context.Canceled)
		// Nothing was stored or removed.
		requireAppToken(t, ts, "p1/r", kept)
		requireNoAppToken(t, ts, "p2/r")
	})

	t.Run("CallAfterCloseFails", func(t *testing.T) {
		t.Parallel()
		s := h.openUnmanaged(t)
		t.Cleanup(func() { _ = s.Close() }) // when skipped; closing twice does nothing
		ts := appTokensOf(t, s)
		mustPutAppToken(t, ts, "p1/r", NewAppToken("token", BaseTime))
		require.NoError(t, s.Close())
		_, err := ts.AppToken(t.Context(), "p1/r")
		require.ErrorIs(t, err, serversync.ErrClosed)
		_, err = ts.PutAppToken(t.Context(), "p1/r", NewAppToken("token", BaseTime.Add(time.Hour)))
		require.ErrorIs(t, err, serversync.ErrClosed)
		require.ErrorIs(t, ts.DeleteAppTokens(t.Context(), "p1/"), serversync.ErrClosed)
	})

	t.Run("SecretRotation", func(t *testing.T) {
		// Access tokens are secrets like any other: RotateSecrets re-seals them, and
		// without the key they were sealed with they do not open.
		t.Parallel()
		db := h.openDatabase(t)
		ctx := t.Context()
		s := db.handle(t, testKeys(t, 1))
		rotatorOf(t, s)
		ts := appTokensOf(t, s)
		tokens := map[string]serversync.AppToken{}
		for i, key := range oddKeys {
			tokens[key] = NewAppToken(fmt.Sprint("access-token-", i), BaseTime.Add(time.Hour))
			mustPutAppToken(t, ts, key, tokens[key])
		}
		db.close(t, s)

		s = db.handle(t, testKeys(t, 2, 1))
		n, err := rotatorOf(t, s).RotateSecrets(ctx)
		require.NoError(t, err)
		assert.Equal(t, len(oddKeys), n, "every access token is re-sealed once")
		n, err = rotatorOf(t, s).RotateSecrets(ctx)
		require.NoError(t, err)
		assert.Zero(t, n, "nothing is left under the old key")
		db.close(t, s)

		s = db.handle(t, testKeys(t, 2)) // the old key can go now
		for key, tok := range tokens {
			requireAppToken(t, appTokensOf(t, s), key, tok)
		}
		db.close(t, s)

		s = db.handle(t, testKeys(t, 1)) // without the new key nothing opens
		_, err = appTokensOf(t, s).AppToken(ctx, oddKeys[0])
		require.ErrorIs(t, err, auth.ErrUnknownKey)
		require.False(t, errors.Is(err, serversync.ErrNotFound))
		db.close(t, s)
	})
}
